import { BreakglassError, type ErrorCode } from '../errors.ts';

const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes canonical standard base64 (RFC 4648 §4, padded). Node's own decoder silently skips
 * junk; we refuse it, so one byte string has exactly one accepted encoding.
 */
export function decodeBase64Strict(
  text: unknown,
  field: string,
  code: ErrorCode,
  maxBytes: number,
): Buffer {
  if (typeof text !== 'string') throw new BreakglassError(code, `${field}: expected base64 text`);
  if (text.length > Math.ceil(maxBytes / 3) * 4) {
    throw new BreakglassError('INPUT_TOO_LARGE', `${field}: more than ${maxBytes} bytes`);
  }
  if (!STD_BASE64.test(text)) throw new BreakglassError(code, `${field}: not canonical base64`);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) {
    throw new BreakglassError(code, `${field}: not canonical base64`);
  }
  // The length check above is on whole base64 quanta: up to 2 bytes more can get through it.
  if (bytes.length > maxBytes) {
    throw new BreakglassError('INPUT_TOO_LARGE', `${field}: more than ${maxBytes} bytes`);
  }
  return bytes;
}
