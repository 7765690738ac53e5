/** The node's answer to a GET (or to a few together), fetched again when the screen says its state changed. */
import { useEffect, useState } from 'preact/hooks'
import { useApi } from '../api.ts'

/**
 * What `load(key)` resolves to (nothing asked while `key` is undefined), loaded again whenever
 * `key` or `version` changes or `reload` is called; an answer to an older load is dropped.
 */
export function useLoaded<T>(key: string | undefined, version: number | string, load: (key: string) => Promise<T>) {
  const [value, setValue] = useState<T>()
  const [error, setError] = useState<string>()
  const [nonce, setNonce] = useState(0)
  useEffect(() => {
    if (key === undefined) return
    let current = true
    load(key).then(
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
  }, [key, version, nonce])
  return { value, error, reload: () => setNonce(n => n + 1) }
}

/** The node's answer to `path` (nothing asked while it is undefined), fetched again whenever `version` changes. */
export function useFetched<T>(path: string | undefined, version: number | string) {
  const api = useApi()
  return useLoaded(path, version, p => api.get<T>(p))
}
