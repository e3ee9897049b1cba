/**
 * The accounting of what a producer holds: records accepted and not settled, and the bytes of
 * memory they hold, under two bounds, with a line of arrivals waiting for room, oldest first.
 * An arrival is charged what it is expected to hold, and its charge moves to what it really
 * holds once that is known. A record larger than the whole byte bound is admitted when
 * nothing else is held, so that nothing waits for ever.
 */

/** An arrival admitted, with the bytes it was charged. */
export interface Admitted<A> {
  readonly arrival: A
  readonly charged: number
}

/**
 * The records and bytes held, and who waits for room.
 *
 * @example
 * ```ts
 * const holdings = new Holdings<string>(2, 1_000)
 * holdings.arrive("a", 600) // true: admitted
 * holdings.arrive("b", 600) // false: in line until "a" holds less or settles
 * holdings.measured(600, 300) // [{ arrival: "b", charged: 600 }]
 * ```
 */
export class Holdings<A> {
  private records = 0
  private bytes = 0
  private readonly line = new Map<A, number>()

  constructor(readonly maxRecords: number, readonly maxBytes: number) {}

  get heldRecords(): number {
    return this.records
  }

  get heldBytes(): number {
    return this.bytes
  }

  get waiting(): number {
    return this.line.size
  }

  /**
   * An arrival expected to hold `bytes`: admitted now (true) when no one waits before it and
   * both bounds have room, or put in line (false).
   */
  arrive(arrival: A, bytes: number): boolean {
    if (this.line.size === 0 && this.hasRoom(bytes)) {
      this.take(bytes)
      return true
    }
    this.line.set(arrival, bytes)
    return false
  }

  /** An arrival in line gave up; false if it was not in line. */
  leave(arrival: A): boolean {
    return this.line.delete(arrival)
  }

  /**
   * A held record's bytes became known: its charge moves from `charged` to `actual`. Returns
   * the arrivals this lets in.
   */
  measured(charged: number, actual: number): Array<Admitted<A>> {
    this.bytes += actual - charged
    return actual < charged ? this.admitWaiting() : []
  }

  /** Held records settled, holding `bytes` together. Returns the arrivals this lets in. */
  release(records: number, bytes: number): Array<Admitted<A>> {
    this.records -= records
    this.bytes -= bytes
    return this.admitWaiting()
  }

  /** Everyone in line, taken out of it (the producer closed: they are refused). */
  clearLine(): Array<A> {
    const waiting = [...this.line.keys()]
    this.line.clear()
    return waiting
  }

  private hasRoom(bytes: number): boolean {
    return this.records < this.maxRecords && (this.records === 0 || this.bytes + bytes <= this.maxBytes)
  }

  private take(bytes: number): void {
    this.records++
    this.bytes += bytes
  }

  private admitWaiting(): Array<Admitted<A>> {
    const admitted: Array<Admitted<A>> = []
    for (const [arrival, bytes] of this.line) {
      if (!this.hasRoom(bytes)) break
      this.line.delete(arrival)
      this.take(bytes)
      admitted.push({ arrival, charged: bytes })
    }
    return admitted
  }
}
