/** Node's codes for a peer certificate that TLS verification refused. */
const CERT_ERRORS = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * The code of a refused server certificate (`SELF_SIGNED_CERT_IN_CHAIN`, `ERR_TLS_CERT_ALTNAME_INVALID`
 * ...) when `err`, or an error in its `cause` chain, is one; null for any other error. Lets a client
 * say "trust this CA" instead of "not reachable".
 */
export function refusedCertificateCode(err: unknown): string | null {
  for (let e = err as { code?: unknown; cause?: unknown } | null, depth = 0; e && depth < 5; depth++) {
    if (typeof e.code === 'string' && CERT_ERRORS.has(e.code)) return e.code;
    e = e.cause as typeof e;
  }
  return null;
}
