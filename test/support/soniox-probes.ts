/**
 * The server probes Soniox (src/soniox/soniox-prober.ts): once at start, before it reports ready,
 * and again while Soniox refuses the account or does not answer. The stand-in records those probe
 * sessions like any other; tests that count or index a call's sessions leave them out.
 */
import { PROBE_CLIENT_REFERENCE_ID } from '../../src/soniox/probe.js'
import type { FakeSoniox, FakeSonioxSession } from './fake-soniox.js'

/** A probe session: its start message carries the probe's client_reference_id. */
export function isProbe(session: FakeSonioxSession): boolean {
  return session.startMessage?.client_reference_id === PROBE_CLIENT_REFERENCE_ID
}

/**
 * The stand-in's sessions without the probes, in connection order. A session whose start message
 * has not arrived yet counts as a call's: the probes the tests wait out (the start probe, before
 * ready) have sent theirs.
 */
export function callSessions(soniox: FakeSoniox): FakeSonioxSession[] {
  return soniox.sessions.filter((s) => !isProbe(s))
}

/** The probe sessions, in connection order. */
export function probeSessions(soniox: FakeSoniox): FakeSonioxSession[] {
  return soniox.sessions.filter(isProbe)
}
