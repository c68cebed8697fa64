import { spawnSync } from 'node:child_process';

/**
 * Home Assistant template rendering for tests. A small evaluator of the Jinja subset the discovery
 * templates use runs always; where python3 with jinja2 is installed, real Jinja (the sandboxed environment
 * Home Assistant builds on) renders the same cases and must agree, so the subset cannot drift from Jinja's
 * semantics.
 */

const UNDEF = Symbol('undefined');
/** A Python float (true division and round return one; it renders as `12.0`, not `12`). */
class PyFloat {
  constructor(readonly v: number) {}
}
type Node =
  | { k: 'lit'; v: unknown }
  | { k: 'name'; n: string }
  | { k: 'attr'; o: Node; n: string }
  | { k: 'call'; f: Node; args: Node[]; kw: [string, Node][] }
  | { k: 'filter'; o: Node; n: string; args: Node[]; kw: [string, Node][] }
  | { k: 'test'; o: Node; n: string; neg: boolean }
  | { k: 'cond'; c: Node; a: Node; b: Node | undefined }
  | { k: 'and' | 'or'; l: Node; r: Node }
  | { k: 'not'; o: Node }
  | { k: 'bin'; op: string; l: Node; r: Node };
type Token = { t: 'num' | 'str' | 'name' | 'op'; v: string };

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const re =
    /\s*(?:(\d+(?:\.\d+)?)|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_]*)|(==|!=|<=|>=|[()[\],.|=<>+\-*/~]))/y;
  let at = 0;
  for (;;) {
    re.lastIndex = at;
    const m = re.exec(src);
    if (!m) break;
    at = re.lastIndex;
    if (m[1] !== undefined) out.push({ t: 'num', v: m[1] });
    else if (m[2] !== undefined || m[3] !== undefined)
      out.push({ t: 'str', v: unescapeString(m[2] ?? m[3]!) });
    else if (m[4] !== undefined) out.push({ t: 'name', v: m[4] });
    else if (m[5] !== undefined) out.push({ t: 'op', v: m[5] });
  }
  if (src.slice(at).trim()) throw new Error(`cannot tokenize: ${src.slice(at)}`);
  return out;
}

function unescapeString(s: string): string {
  return s.replace(/\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)/g, (_, e: string) =>
    e.length > 1 ? String.fromCodePoint(Number.parseInt(e.slice(1), 16)) : e === 'n' ? '\n' : e,
  );
}

function parse(src: string): Node {
  const tokens = tokenize(src);
  let i = 0;
  const peek = (v?: string) => {
    const t = tokens[i];
    return t && (v === undefined || ((t.t === 'op' || t.t === 'name') && t.v === v)) ? t : undefined;
  };
  const take = (v: string) => {
    if (!peek(v)) throw new Error(`expected ${v} at ${tokens[i]?.v}`);
    i += 1;
  };
  const cond = (): Node => {
    const a = or();
    if (!peek('if')) return a;
    i += 1;
    const c = or();
    if (!peek('else')) return { k: 'cond', c, a, b: undefined };
    i += 1;
    return { k: 'cond', c, a, b: cond() };
  };
  const or = (): Node => {
    let l = and();
    while (peek('or')) {
      i += 1;
      l = { k: 'or', l, r: and() };
    }
    return l;
  };
  const and = (): Node => {
    let l = not();
    while (peek('and')) {
      i += 1;
      l = { k: 'and', l, r: not() };
    }
    return l;
  };
  const not = (): Node => {
    if (!peek('not')) return compare();
    i += 1;
    return { k: 'not', o: not() };
  };
  const compare = (): Node => {
    let l = add();
    for (const op of ['==', '!=', '<', '>', '<=', '>=']) {
      if (peek(op)) {
        i += 1;
        l = { k: 'bin', op, l, r: add() };
      }
    }
    return l;
  };
  const add = (): Node => {
    let l = mul();
    while (peek('+') || peek('-') || peek('~')) {
      const op = tokens[i++]!.v;
      l = { k: 'bin', op, l, r: mul() };
    }
    return l;
  };
  const mul = (): Node => {
    let l = filtered();
    while (peek('*') || peek('/')) {
      const op = tokens[i++]!.v;
      l = { k: 'bin', op, l, r: filtered() };
    }
    return l;
  };
  const callArgs = () => {
    const args: Node[] = [];
    const kw: [string, Node][] = [];
    take('(');
    while (!peek(')')) {
      const t = tokens[i];
      if (t?.t === 'name' && tokens[i + 1]?.v === '=' && tokens[i + 1]?.t === 'op') {
        i += 2;
        kw.push([t.v, cond()]);
      } else args.push(cond());
      if (!peek(')')) take(',');
    }
    take(')');
    return { args, kw };
  };
  // Jinja binds filters and tests to the operand (parse_unary -> parse_filter_expr), not to a whole sum.
  const filtered = (): Node => {
    let node = postfix(primary());
    for (;;) {
      if (peek('|')) {
        i += 1;
        const n = tokens[i++]!.v;
        const { args, kw } = peek('(') ? callArgs() : { args: [], kw: [] };
        node = { k: 'filter', o: node, n, args, kw };
      } else if (peek('is')) {
        i += 1;
        const neg = Boolean(peek('not'));
        if (neg) i += 1;
        node = { k: 'test', o: node, n: tokens[i++]!.v, neg };
      } else return node;
    }
  };
  const postfix = (node: Node): Node => {
    for (;;) {
      if (peek('.')) {
        i += 1;
        node = { k: 'attr', o: node, n: tokens[i++]!.v };
      } else if (peek('(')) node = { k: 'call', f: node, ...callArgs() };
      else return node;
    }
  };
  const primary = (): Node => {
    const t = tokens[i++];
    if (!t) throw new Error('unexpected end');
    if (t.t === 'num') return { k: 'lit', v: t.v.includes('.') ? new PyFloat(Number(t.v)) : Number(t.v) };
    if (t.t === 'str') return { k: 'lit', v: t.v };
    if (t.t === 'name') {
      const literals: Record<string, unknown> = { none: null, None: null, true: true, True: true };
      if (t.v in literals) return { k: 'lit', v: literals[t.v] };
      if (t.v === 'false' || t.v === 'False') return { k: 'lit', v: false };
      return { k: 'name', n: t.v };
    }
    if (t.v === '(') {
      const inner = cond();
      take(')');
      return inner;
    }
    throw new Error(`unexpected ${t.v}`);
  };
  const node = cond();
  if (i !== tokens.length) throw new Error(`trailing ${tokens[i]?.v}`);
  return node;
}

const isMapping = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof PyFloat);
const num = (v: unknown) => (v instanceof PyFloat ? v.v : (v as number));
const truthy = (v: unknown): boolean =>
  v === UNDEF || v === null || v === false || v === '' || v === 0
    ? false
    : v instanceof PyFloat
      ? v.v !== 0
      : Array.isArray(v)
        ? v.length > 0
        : isMapping(v)
          ? Object.keys(v).length > 0
          : true;

function pyStr(v: unknown): string {
  if (v === UNDEF) return '';
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (v instanceof PyFloat) return Number.isInteger(v.v) ? `${v.v}.0` : String(v.v);
  if (typeof v === 'number' || typeof v === 'string') return String(v);
  throw new Error(`no Python str() here for ${JSON.stringify(v)}`);
}

function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (x instanceof PyFloat ? x.v : x));
}

function evaluate(node: Node, scope: Record<string, unknown>): unknown {
  const ev = (n: Node) => evaluate(n, scope);
  switch (node.k) {
    case 'lit':
      return node.v;
    case 'name':
      return node.n in scope ? scope[node.n] : node.n === 'dict' ? 'dict' : UNDEF;
    case 'attr': {
      const o = ev(node.o);
      // Jinja's Undefined raises on attribute access; None and missing keys give Undefined.
      if (o === UNDEF) throw new Error(`attribute ${node.n} of an undefined value`);
      return isMapping(o) && Object.hasOwn(o, node.n) ? o[node.n] : UNDEF;
    }
    case 'call': {
      if (ev(node.f) !== 'dict') throw new Error('only dict() is callable here');
      const base = node.args.length > 0 ? ev(node.args[0]!) : {};
      if (!isMapping(base)) throw new Error('dict() of a non-mapping');
      return { ...base, ...Object.fromEntries(node.kw.map(([k, n]) => [k, ev(n)])) };
    }
    case 'filter': {
      const v = ev(node.o);
      const args = node.args.map(ev);
      if (node.kw.length > 0) throw new Error('filter keyword arguments are not in the subset');
      switch (node.n) {
        case 'default':
          return v === UNDEF || (args[1] === true && !truthy(v)) ? (args[0] ?? '') : v;
        case 'string':
          return pyStr(v);
        case 'truncate': {
          if (typeof v !== 'string') throw new Error('truncate of a non-string');
          const [length = 255, killwords = false, end = '...', leeway = 5] = args as [
            number,
            boolean,
            string,
            number,
          ];
          const chars = Array.from(v);
          if (chars.length <= length + leeway) return v;
          if (killwords) return chars.slice(0, length - end.length).join('') + end;
          const cut = chars.slice(0, length - end.length).join('');
          return cut.slice(0, Math.max(0, cut.lastIndexOf(' '))) + end;
        }
        case 'round':
          return new PyFloat(Number(num(v).toFixed((args[0] as number | undefined) ?? 0)));
        case 'tojson':
          return toJson(v);
        default:
          throw new Error(`filter ${node.n} is not in the subset`);
      }
    }
    case 'test': {
      const v = ev(node.o);
      const tests: Record<string, boolean> = {
        defined: v !== UNDEF,
        undefined: v === UNDEF,
        mapping: isMapping(v),
        none: v === null,
        string: typeof v === 'string',
        number: typeof v === 'number' || v instanceof PyFloat,
      };
      if (!(node.n in tests)) throw new Error(`test ${node.n} is not in the subset`);
      return node.neg ? !tests[node.n] : tests[node.n];
    }
    case 'cond':
      return truthy(ev(node.c)) ? ev(node.a) : node.b ? ev(node.b) : UNDEF;
    case 'and': {
      const l = ev(node.l);
      return truthy(l) ? ev(node.r) : l;
    }
    case 'or': {
      const l = ev(node.l);
      return truthy(l) ? l : ev(node.r);
    }
    case 'not':
      return !truthy(ev(node.o));
    case 'bin': {
      const l = ev(node.l);
      const r = ev(node.r);
      if (node.op === '==' || node.op === '!=') {
        const same =
          l === UNDEF || r === UNDEF
            ? l === r
            : (typeof l === 'number' || l instanceof PyFloat) &&
                (typeof r === 'number' || r instanceof PyFloat)
              ? num(l) === num(r)
              : l === r;
        return node.op === '==' ? same : !same;
      }
      if (node.op === '~') return pyStr(l) + pyStr(r);
      if (typeof l === 'string' && typeof r === 'string' && node.op === '+') return l + r;
      const a = num(l);
      const b = num(r);
      if (typeof a !== 'number' || typeof b !== 'number') throw new Error(`${node.op} of non-numbers`);
      const float = l instanceof PyFloat || r instanceof PyFloat || node.op === '/';
      const ops: Record<string, number> = { '+': a + b, '-': a - b, '*': a * b, '/': a / b };
      if (!(node.op in ops)) throw new Error(`operator ${node.op} is not in the subset`);
      return float ? new PyFloat(ops[node.op]!) : ops[node.op];
    }
  }
}

/** Renders like Home Assistant's MQTT templates: `value` is the text, `value_json` its JSON; output stripped. */
export function render(template: string, payload: string): string {
  const scope: Record<string, unknown> = { value: payload };
  try {
    scope.value_json = JSON.parse(payload);
  } catch {
    // not JSON: value_json stays undefined, as in Home Assistant
  }
  const out = template.replace(/\{\{(.*?)\}\}/gs, (_, expr: string) => pyStr(evaluate(parse(expr), scope)));
  return out.trim();
}

const JINJA = `
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment()
out = []
for case in json.load(sys.stdin):
    variables = {"value": case["payload"]}
    try:
        variables["value_json"] = json.loads(case["payload"])
    except ValueError:
        pass
    out.append(env.from_string(case["template"]).render(**variables).strip())
print(json.dumps(out))
`;
/** The first python3 that has jinja2 (PATH's, else Debian's, where .ci/run installs python3-jinja2). */
const python = ['python3', '/usr/bin/python3'].find(
  (exe) => spawnSync(exe, ['-c', 'import jinja2'], { stdio: 'ignore' }).status === 0,
);

export function renderWithJinja(cases: { template: string; payload: string }[]): string[] {
  if (!python) throw new Error('no python3 with jinja2 (apt-get install python3-jinja2)');
  const run = spawnSync(python, ['-c', JINJA], { input: JSON.stringify(cases), encoding: 'utf8' });
  if (run.status !== 0) throw new Error(run.stderr);
  return JSON.parse(run.stdout) as string[];
}
