/**
 * `outpost doctor`: the checks an integrator runs on a freshly flashed board before `outpost start`. Each
 * check is bounded in time, runs whatever the others found, and says how to fix what it finds; nothing here
 * starts the daemon. Exit code 0 when nothing fails (warnings allowed), 1 otherwise.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { type Config, ConfigError, loadConfig } from '../config/index.js';
import { brokerCheck } from './doctorBroker.js';
import { dataChecks, firstLine, timeChecks } from './doctorChecks.js';
import { microphoneCheck } from './doctorMicrophone.js';
import { modelChecks } from './doctorModel.js';
import { nativeChecks, nodeCheck } from './doctorNative.js';
import { projectorCheck } from './doctorProjector.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

/** What one check found. */
export interface CheckResult {
  status: CheckStatus;
  /** one line: what was found */
  message: string;
  /** one concrete step that clears a warning or failure (a command to run, a setting to change) */
  fix?: string | undefined;
  /** the numbers behind the message, for `--json` readers */
  details?: Record<string, unknown> | undefined;
}

/** A check's result with its id and how long it took. */
export interface Finding extends CheckResult {
  id: string;
  /** wall-clock time the check took, ms */
  ms: number;
}

export interface DoctorContext {
  /** The validated configuration. */
  config: Config;
  /** Aborted when the check ran out of time: stop children, close sockets. */
  signal: AbortSignal;
  /** Working directory relative paths start from. */
  cwd: string;
}

export interface DoctorCheck {
  id: string;
  /** The check fails with `timeoutFix` when it has not finished within this, ms. */
  timeoutMs: number;
  /** What to do when the check does not finish in time. */
  timeoutFix: string;
  run(context: DoctorContext): Promise<CheckResult>;
}

/** A check that needs no configuration (it runs even when the configuration is invalid). */
export interface StandaloneCheck extends Omit<DoctorCheck, 'run'> {
  run(context: Omit<DoctorContext, 'config'> & { config?: Config | undefined }): Promise<CheckResult>;
}

export interface DoctorOptions {
  /** --config FILE; absent: $OUTPOST_CONFIG, else ./outpost.yaml if present. */
  file?: string | undefined;
  /** Environment the configuration is read from. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Folder relative paths start from. Default process.cwd(). */
  cwd?: string;
}

/** Runs every check, one after the other, each within its time limit; never throws. */
export async function runDoctor(options: DoctorOptions = {}): Promise<Finding[]> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const findings: Finding[] = [];
  let config: Config | undefined;
  const started = performance.now();
  try {
    config = loadConfig({ file: options.file, env, cwd });
    const file = resolve(cwd, options.file ?? env.OUTPOST_CONFIG ?? 'outpost.yaml');
    findings.push({
      id: 'config',
      status: 'ok',
      message: `valid: ${existsSync(file) ? file : 'defaults (no outpost.yaml)'} + OUTPOST_* environment`,
      ms: Math.round(performance.now() - started),
    });
  } catch (error) {
    const problems = error instanceof ConfigError ? error.problems : [(error as Error).message];
    findings.push({
      id: 'config',
      status: 'fail',
      message: `invalid: ${problems.join('; ')}`,
      fix: 'correct the keys named (in the config file or the OUTPOST_* variable named), then check with `outpost start --print-config`',
      details: { problems },
      ms: Math.round(performance.now() - started),
    });
  }

  const standalone: StandaloneCheck[] = [nodeCheck, ...nativeChecks];
  for (const check of standalone) findings.push(await runCheck(check, { config, cwd }));
  const configured: DoctorCheck[] = [
    ...dataChecks,
    ...modelChecks,
    projectorCheck,
    brokerCheck,
    microphoneCheck,
  ];
  for (const check of configured) {
    if (config === undefined) {
      findings.push({
        id: check.id,
        status: 'warn',
        message: 'not checked: the configuration is invalid',
        fix: 'fix the configuration (see the config check), then run `outpost doctor` again',
        ms: 0,
      });
      continue;
    }
    const run = check.run;
    findings.push(await runCheck({ ...check, run: (c) => run({ ...c, config }) }, { config, cwd }));
  }
  for (const check of timeChecks) findings.push(await runCheck(check, { config, cwd }));
  return findings;
}

async function runCheck(
  check: StandaloneCheck,
  context: { config: Config | undefined; cwd: string },
): Promise<Finding> {
  const controller = new AbortController();
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new Error('timed out'));
      resolve({
        status: 'fail',
        message: `did not finish within ${check.timeoutMs / 1000} s`,
        fix: check.timeoutFix,
      });
    }, check.timeoutMs);
  });
  let result: CheckResult;
  try {
    result = await Promise.race([check.run({ ...context, signal: controller.signal }), timedOut]);
  } catch (error) {
    result = {
      status: 'fail',
      message: `the check itself failed: ${firstLine(error)}`,
      fix: check.timeoutFix,
    };
  } finally {
    clearTimeout(timer);
    controller.abort(new Error('check finished'));
  }
  return { id: check.id, ...result, ms: Math.round(performance.now() - started) };
}

/** 0 when nothing failed, else 1. */
export function exitCodeOf(findings: readonly Finding[]): 0 | 1 {
  return findings.some((f) => f.status === 'fail') ? 1 : 0;
}

/** The `--json` document. */
export function doctorJson(findings: readonly Finding[], version: string): string {
  const count = (status: CheckStatus) => findings.filter((f) => f.status === status).length;
  const summary = { ok: count('ok'), warn: count('warn'), fail: count('fail') };
  return `${JSON.stringify({ version, ok: summary.fail === 0, summary, checks: findings }, null, 2)}\n`;
}

const LABEL: Record<CheckStatus, string> = { ok: 'ok', warn: 'WARN', fail: 'FAIL' };

/** The readable report: one line per check, its fix below it, and a summary line. */
export function doctorText(findings: readonly Finding[], version: string): string {
  const width = Math.max(...findings.map((f) => f.id.length));
  const indent = ' '.repeat(6 + width + 2);
  const lines = [`outpost doctor ${version}`, ''];
  for (const f of findings) {
    lines.push(`${LABEL[f.status].padEnd(6)}${f.id.padEnd(width)}  ${f.message}`);
    if (f.fix && f.status !== 'ok') lines.push(`${indent}fix: ${f.fix}`);
  }
  const count = (status: CheckStatus) => findings.filter((f) => f.status === status).length;
  const fails = count('fail');
  const warns = count('warn');
  lines.push(
    '',
    `${count('ok')} ok, ${warns} warning${warns === 1 ? '' : 's'}, ${fails} failure${fails === 1 ? '' : 's'}` +
      (fails > 0 ? ': fix the failures, then run `outpost doctor` again' : ': ready for `outpost start`'),
  );
  return `${lines.join('\n')}\n`;
}

export function registerDoctorCommand(program: Command, version: string): void {
  program
    .command('doctor')
    .description(
      'check this board before `outpost start`: Node, native modules, data folder, model and memory, ' +
        'projector, broker, microphone, clock (exit 1 when a check fails; never starts the daemon)',
    )
    .option('-c, --config <file>', 'config file (default: $OUTPOST_CONFIG, else ./outpost.yaml if present)')
    .option('--json', 'print the findings as JSON')
    .action(async (opts: { config?: string; json?: boolean }) => {
      const findings = await runDoctor({ file: opts.config });
      const text = opts.json ? doctorJson(findings, version) : doctorText(findings, version);
      // A check that timed out may leave a socket or a native runtime behind: exit once the report is out.
      process.stdout.write(text, () => process.exit(exitCodeOf(findings)));
    });
}
