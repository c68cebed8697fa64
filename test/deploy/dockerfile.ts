/**
 * Just enough of a Dockerfile reader for the deploy tests: instructions with their continuation lines
 * joined and comments dropped, grouped into build stages.
 */

export interface Instruction {
  /** upper case: FROM, RUN, COPY, ... */
  keyword: string;
  /** the rest of the instruction, continuation lines joined with a space */
  args: string;
}

export interface Stage {
  /** the image or stage named after FROM */
  from: string;
  /** `AS <name>`, lower case; undefined when unnamed */
  name: string | undefined;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARG instructions before the first FROM */
  globalArgs: Instruction[];
  stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    // Comment lines may sit between continuation lines too; they are not part of the instruction.
    if (line.startsWith('#') || (line === '' && pending === '')) continue;
    const continued = line.endsWith('\\');
    pending += `${continued ? line.slice(0, -1).trim() : line} `;
    if (continued) continue;
    const text = pending.trim();
    pending = '';
    if (text === '') continue;
    const [keyword = '', ...rest] = text.split(/\s+/);
    instructions.push({ keyword: keyword.toUpperCase(), args: rest.join(' ') });
  }

  const file: Dockerfile = { globalArgs: [], stages: [] };
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const parts = instruction.args.split(/\s+/).filter((part) => !part.startsWith('--'));
      const as = parts.findIndex((part) => part.toUpperCase() === 'AS');
      file.stages.push({
        from: parts[0] ?? '',
        name: as >= 0 ? parts[as + 1]?.toLowerCase() : undefined,
        instructions: [],
      });
    } else if (file.stages.length === 0) {
      if (instruction.keyword === 'ARG') file.globalArgs.push(instruction);
    } else {
      file.stages.at(-1)!.instructions.push(instruction);
    }
  }
  return file;
}

/** The stage of that name; throws when there is none. */
export function stage(file: Dockerfile, name: string): Stage {
  const found = file.stages.find((s) => s.name === name);
  if (!found) throw new Error(`no stage ${name}`);
  return found;
}

/** The arguments of every instruction of that keyword in the stage. */
export function argsOf(s: Stage, keyword: string): string[] {
  return s.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);
}

/** `--start-period=300s` and the like of a HEALTHCHECK, by flag name. */
export function flagsOf(args: string): Record<string, string> {
  const flags: Record<string, string> = {};
  for (const match of args.matchAll(/--([a-z-]+)=(\S+)/g)) flags[match[1]!] = match[2]!;
  return flags;
}

/** Seconds of a Docker duration: `300s`, `5m`, `1m30s`, `1h`. */
export function seconds(duration: string): number {
  const unit: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001 };
  let total = 0;
  let rest = duration.trim();
  for (const match of duration.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    total += Number(match[1]) * unit[match[2]!]!;
    rest = rest.replace(match[0], '');
  }
  if (rest !== '' || duration.trim() === '') throw new Error(`not a duration: ${duration}`);
  return total;
}
