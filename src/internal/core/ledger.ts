/**
 * Where each record of a batch stands, by its index in the batch: what a batch that is
 * interrupted or runs out of retries reports from. Kept in two byte arrays for speed (a batch
 * may hold hundreds of thousands of records), behind methods that name the states.
 */

/**
 * A Kinesis record as the ledger sees it: a logical record (`index`), or an aggregate of
 * several (`members`), which one call carries, writes or fails together.
 *
 * @since 0.1.0
 */
export interface LedgerRecord {
  readonly index: number
  readonly members?: ReadonlyArray<{ readonly index: number }> | undefined
}

/** A record's delivery state. */
export type RecordState = "NotSent" | "InFlight" | "Written"

const NOT_SENT = 0
const IN_FLIGHT = 1
const WRITTEN = 2
const STATES: ReadonlyArray<RecordState> = ["NotSent", "InFlight", "Written"]

/**
 * The delivery state of every record of one batch, updated as calls start and finish.
 *
 * A record is `NotSent` until a call carries it (and again after a call failed it),
 * `InFlight` while a call carries it, `Written` once Kinesis accepted it. Apart from its
 * state, a record is marked `ambiguous` once some call that carried it ended in a way that
 * may have written it anyway (a timeout, a 5xx, a connection lost after sending).
 *
 * @since 0.1.0
 */
export class DeliveryLedger {
  private readonly state: Uint8Array
  private readonly ambiguous: Uint8Array
  /** Calls that carried each record, the one in flight included. */
  private readonly calls: Uint32Array

  constructor(readonly size: number) {
    this.state = new Uint8Array(size)
    this.ambiguous = new Uint8Array(size)
    this.calls = new Uint32Array(size)
  }

  /** A call carrying the record has started. */
  sending(index: number): void {
    this.state[index] = IN_FLIGHT
    this.calls[index]!++
  }

  /** The calls that carried the record, the one in flight included. */
  attempts(index: number): number {
    return this.calls[index]!
  }

  /** Kinesis accepted the record. */
  written(index: number): void {
    this.state[index] = WRITTEN
  }

  /** A call did not write the record; `ambiguous` when it may have written it anyway. */
  failed(index: number, ambiguous: boolean): void {
    this.state[index] = NOT_SENT
    if (ambiguous) this.ambiguous[index] = 1
  }

  stateOf(index: number): RecordState {
    return STATES[this.state[index]!]!
  }

  isWritten(index: number): boolean {
    return this.state[index] === WRITTEN
  }

  isInFlight(index: number): boolean {
    return this.state[index] === IN_FLIGHT
  }

  /** `sending` for each logical record a Kinesis record carries: itself, or an aggregate's members. */
  sendingRecord(record: LedgerRecord): void {
    if (record.members === undefined) this.sending(record.index)
    else for (const m of record.members) this.sending(m.index)
  }

  /** `written` for each logical record a Kinesis record carries. */
  writtenRecord(record: LedgerRecord): void {
    if (record.members === undefined) this.state[record.index] = WRITTEN
    else for (const m of record.members) this.state[m.index] = WRITTEN
  }

  /** `failed` for each logical record a Kinesis record carries. */
  failedRecord(record: LedgerRecord, ambiguous: boolean): void {
    if (record.members === undefined) this.failed(record.index, ambiguous)
    else for (const m of record.members) this.failed(m.index, ambiguous)
  }

  /** Whether the record may be on the stream though not known to be: an ambiguous outcome, or in flight now. */
  maybeDelivered(index: number): boolean {
    return this.ambiguous[index] === 1 || this.state[index] === IN_FLIGHT
  }
}
