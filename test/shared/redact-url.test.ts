/**
 * src/shared/redact-url.ts: what of a URL may be shown, and that a string that is not a URL leaks
 * nothing either.
 */
import t from 'tap'
import { redactUrl } from '../../src/shared/redact-url.js'

t.test('the password, query values and fragment are masked; host and path stay recognisable', async (t) => {
  t.equal(redactUrl('https://user:s3cret@hooks.example.com:8443/in/calls?token=abc&v=2'), 'https://user:***@hooks.example.com:8443/in/calls?token=***&v=***')
  t.equal(redactUrl('https://hooks.example.com/in'), 'https://hooks.example.com/in', 'a URL without secrets is shown as it is')
  t.equal(redactUrl('wss://stt-rt.soniox.com/transcribe-websocket'), 'wss://stt-rt.soniox.com/transcribe-websocket')
  t.equal(redactUrl('https://ghp_0123456789@git.example.com/hook'), 'https://***@git.example.com/hook', 'a username standing alone is the token')
  t.equal(redactUrl('https://h.example.com/?abc123secret&a=&b=1'), 'https://h.example.com/?***&a=&b=***', 'a bare query item is masked whole')
  t.equal(redactUrl('https://h.example.com/p#access_token=xyz'), 'https://h.example.com/p#***')
  t.equal(redactUrl('ftp://user:s3cret@host/x'), 'ftp://user:***@host/x', 'any scheme')
  t.equal(redactUrl('https://user:p%40ss@host/'), 'https://user:***@host/', 'an escaped password')
})

t.test('text that does not parse as a URL is masked from its last @ back and from its first ? or #', async (t) => {
  t.equal(redactUrl('http://user:pa/ss@host:99999/hook?token=abc'), 'http://***@host:99999/hook?***', 'a password holding a slash, and a bad port')
  t.equal(redactUrl('user:s3cret@host/hook'), '***@host/hook', 'no scheme')
  t.equal(redactUrl('hooks.example.com/in'), 'hooks.example.com/in', 'a typo without secrets stays visible')
  t.equal(redactUrl(''), '')
  for (const text of ['http://user:pa/ss@host:99999/hook?token=abc', 'user:s3cret@host#frag', 'not a url ?s3cret']) {
    t.notMatch(redactUrl(text), /s3cret|pa\/ss|abc|frag/, text)
  }
})
