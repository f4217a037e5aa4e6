/**
 * The contract of a wire codec (implementations: codecs.ts fp32 / bf16, fp16.ts), apart from them so
 * a codec file can implement it without importing the registry in codecs.ts.
 */

export type CodecName = 'fp32' | 'bf16' | 'fp16';

export interface WireCodec {
  readonly name: CodecName;
  /** Value of the proto enum ringtune.v1.Codec. */
  readonly wireId: number;
  /** Bytes per value on the wire (fp16's 4-byte message header aside: see payloadBytes). */
  readonly bytesPerElement: number;
  /** Exact payload size of a message of `elements` values. */
  payloadBytes(elements: number): number;
  /** Writes src into dst (byteOffset a multiple of 4); returns the number of bytes written. */
  encode(src: Float32Array, dst: Uint8Array): number;
  /** dst[i] += decoded src[i]; src.byteOffset must be a multiple of 4. */
  accumulate(src: Uint8Array, dst: Float32Array): void;
  /** dst[i] = decoded src[i]; src.byteOffset must be a multiple of 4. */
  decode(src: Uint8Array, dst: Float32Array): void;
  /** values[i] = decode(encode(values[i])) in place: what every receiver will hold. */
  roundTrip(values: Float32Array): void;
}
