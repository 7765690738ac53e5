/** The node's answer to a GET, fetched again when the screen says its state changed. */
import { useEffect, useState } from 'preact/hooks'
import { useApi } from '../api.ts'

/** The node's answer to `path` (nothing asked while it is undefined), fetched again whenever `version` changes. */
export function useFetched<T>(path: string | undefined, version: number | string) {
  const api = useApi()
  const [value, setValue] = useState<T>()
  const [error, setError] = useState<string>()
  const [nonce, setNonce] = useState(0)
  useEffect(() => {
    if (path === undefined) return
    let current = true
    api.get<T>(path).then(
      v => {
        if (!current) return
        setValue(v)
        setError(undefined)
      },
      (err: Error) => {
        if (current) setError(err.message)
      },
    )
    return () => {
      current = false
    }
  }, [path, version, nonce])
  return { value, error, reload: () => setNonce(n => n + 1) }
}
