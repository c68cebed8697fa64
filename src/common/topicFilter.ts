/**
 * A compiled MQTT topic filter that also returns what its wildcards matched: `sensors/+/+` on
 * `sensors/pump1/temperature` captures ['pump1', 'temperature']; a trailing `#` captures the rest as one.
 */
export class TopicFilter {
  readonly #levels: readonly string[];

  constructor(readonly filter: string) {
    this.#levels = filter.split('/');
  }

  /** The captures when `topic` matches, else null. Wildcards never match topics that begin with `$`. */
  match(topic: string): string[] | null {
    if (topic.startsWith('$') && (this.#levels[0] === '+' || this.#levels[0] === '#')) return null;
    const levels = topic.split('/');
    const captures: string[] = [];
    for (let i = 0; i < this.#levels.length; i++) {
      const want = this.#levels[i]!;
      if (want === '#') {
        if (i < levels.length) captures.push(levels.slice(i).join('/'));
        return captures;
      }
      const got = levels[i];
      if (got === undefined) return null;
      if (want === '+') captures.push(got);
      else if (want !== got) return null;
    }
    return levels.length === this.#levels.length ? captures : null;
  }
}
