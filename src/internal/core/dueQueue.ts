/**
 * Items each due at a time, taken in the order they fall due: a binary min-heap on the due
 * time, so that one timer serves any number of waits (a fiber sleeping per item holds a
 * suspension, a timer and a continuation for the whole wait).
 */
export class DueQueue<A> {
  private readonly items: Array<A> = []
  private readonly dues: Array<number> = []

  get size(): number {
    return this.items.length
  }

  /** When the first item falls due; `undefined` when there is none. */
  get nextDue(): number | undefined {
    return this.dues[0]
  }

  /** Adds `item`, due at `due`. Items due at the same time come out in no set order. */
  push(item: A, due: number): void {
    const { dues, items } = this
    let i = items.length
    items.push(item)
    dues.push(due)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (dues[parent]! <= due) break
      items[i] = items[parent]!
      dues[i] = dues[parent]!
      i = parent
    }
    items[i] = item
    dues[i] = due
  }

  /** Removes and returns the first item if it is due at `now` or before; `undefined` otherwise. */
  popDue(now: number): A | undefined {
    const { dues, items } = this
    if (items.length === 0 || dues[0]! > now) return undefined
    const first = items[0]!
    const lastItem = items.pop()!
    const lastDue = dues.pop()!
    const n = items.length
    if (n > 0) {
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        if (left >= n) break
        const child = left + 1 < n && dues[left + 1]! < dues[left]! ? left + 1 : left
        if (dues[child]! >= lastDue) break
        items[i] = items[child]!
        dues[i] = dues[child]!
        i = child
      }
      items[i] = lastItem
      dues[i] = lastDue
    }
    return first
  }
}
