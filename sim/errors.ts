/**
 * Typed errors of the simulator. Each has a stable name; callers compare
 * `err.name === ScenarioError.name`, never a string literal or the message.
 */

/** A scenario could not set up what it measures: a reader that read nothing, a release missing from the log. */
export class ScenarioError extends Error {
  static override name = 'ScenarioError'

  constructor(message = 'the scenario could not be set up') {
    super(message)
    this.name = 'ScenarioError'
  }
}
