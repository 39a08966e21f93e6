/**
 * URLs as they may be shown: in logs, in printed output (`check`) and in error messages. A URL
 * setting can carry credentials (`https://user:password@host/...`, which the webhook client sends
 * as basic auth, or `?token=...`), and those must not reach a journal or a terminal.
 *
 * Kept: scheme, host, port and path, so an admin recognises which receiver is meant. Replaced by
 * `***`: the password, a username standing alone (`https://<token>@host` is how many services put
 * a token in a URL), every query value (a bare query item, being possibly a token itself, whole)
 * and the fragment.
 */

const MASK = '***'

export function redactUrl(text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return redactUnparsed(text)
  }
  // `user:s3cret@host/hook` parses too: as scheme `user:` and an opaque path. Without a host it is
  // no URL of a server, so it is masked as text.
  if (url.host === '') return redactUnparsed(text)
  if (url.password !== '') url.password = MASK
  else if (url.username !== '') url.username = MASK
  if (url.search !== '') url.search = redactQuery(url.search.slice(1))
  if (url.hash !== '') url.hash = MASK
  return url.href
}

/** `a=1&b&c=` -> `a=***&***&c=`: names kept, values (and bare items) masked. */
function redactQuery(query: string): string {
  return query
    .split('&')
    .map((item) => {
      const eq = item.indexOf('=')
      if (eq < 0) return item === '' ? item : MASK
      return eq === item.length - 1 ? item : `${item.slice(0, eq + 1)}${MASK}`
    })
    .join('&')
}

/**
 * Text that is not a URL (a typo in a setting) is shown as far as it is safe, so the typo stays
 * visible: everything up to the last `@` (where user-info would end; the parser could not say
 * where it ends, e.g. a password holding `/`) and everything from the first `?` or `#` is masked.
 */
function redactUnparsed(text: string): string {
  const cut = text.search(/[?#]/)
  const head = cut < 0 ? text : text.slice(0, cut)
  const tail = cut < 0 ? '' : `${text[cut]}${MASK}`
  const at = head.lastIndexOf('@')
  if (at < 0) return head + tail
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(head)?.[0] ?? ''
  return `${scheme}${MASK}${head.slice(at)}${tail}`
}
