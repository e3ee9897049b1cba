/**
 * `tail` over the `StreamReader` (wired once it lands).
 *
 * @internal
 */
import { Stream } from "effect"
import { makeTail } from "./tail.js"

export const tail = makeTail(() => Stream.empty)
