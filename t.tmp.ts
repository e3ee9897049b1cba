import { Config, ConfigError, ConfigProvider, Effect, Either } from "effect"
const mk = (path: Array<string>, message: string): ConfigError.ConfigError => {
  const base = ConfigError.InvalidData(path, message)
  return Object.create(Object.getPrototypeOf(base), { ...Object.getOwnPropertyDescriptors(base), toString: { value: () => message } })
}
const c = Config.mapOrFail(Config.string("AWS_ACCOUNT_ID"), (t) => Either.left(mk(["AWS_ACCOUNT_ID"], `AWS_ACCOUNT_ID must be 12 digits, got ${t}`)))
const e = Effect.runSync(Effect.flip(c).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["AWS_ACCOUNT_ID","1234"]])))))
console.log(String(e), e.path)
const all = Config.all({ a: c, b: Config.string("B") })
const e2 = Effect.runSync(Effect.flip(all).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["AWS_ACCOUNT_ID","1234"]])))))
console.log(String(e2))
