/**
 * What a Kinesis record costs to put, as AWS bills it:
 *
 * - provisioned streams bill PUT payload units: each record, its data plus its partition key,
 *   counts in whole 25 KB chunks (a 500-byte record is one unit, a 26 KB record two);
 * - on-demand streams bill the bytes written with each record rounded up to a whole 1 KB.
 *
 * Part of the delivery core: decisions only, no effects.
 */

/** Bytes of one PUT payload unit (25 KB). */
export const PUT_PAYLOAD_UNIT_BYTES = 25 * 1024

/** Bytes an on-demand stream rounds each record up to a multiple of (1 KB). */
export const ON_DEMAND_ROUNDING_BYTES = 1024

/** PUT payload units of one record of `bytes` (data plus partition key): at least 1. */
export const putPayloadUnits = (bytes: number): number => Math.max(1, Math.ceil(bytes / PUT_PAYLOAD_UNIT_BYTES))

/** The bytes an on-demand stream bills for one record of `bytes` (data plus partition key). */
export const onDemandBilledBytes = (bytes: number): number =>
  Math.max(1, Math.ceil(bytes / ON_DEMAND_ROUNDING_BYTES)) * ON_DEMAND_ROUNDING_BYTES
