/** No session: how to get one (the client has no password form; the command line hands out links). */

export function SignInScreen({ reason }: { reason?: string }) {
  return (
    <main id="main" class="signin">
      <div class="card">
        <h1>Open edgeward from your node</h1>
        {reason !== undefined && (
          <p class="notice" role="alert">
            {reason}
          </p>
        )}
        <p>
          This window has no session. Sessions start from a one-time link that your node prints; each link works once,
          within two minutes.
        </p>
        <p>On the machine that runs your node:</p>
        <pre class="command">edgeward ui</pre>
        <p class="muted">It opens this client with a fresh link, or prints one to open in your browser.</p>
      </div>
    </main>
  )
}
