/**
 * The dot-product kernel of the resampler (resample.ts): a WebAssembly module that multiplies four taps
 * per instruction (128-bit SIMD, in every Node 20 on x64 and arm64), assembled here from its bytes, and
 * the plain-JS loop with the same arithmetic that runs where the module cannot be instantiated.
 */

/**
 * Output k = sum over m < taps of coefs[phase(k) * taps + m] * input[base(k) + m], where base and phase
 * start at 0 and `phase0` and advance by `step` and `stepPhase` (carrying into base at `up`).
 */
export type FirKernel = (
  inPtr: number,
  outPtr: number,
  count: number,
  coefPtr: number,
  taps: number,
  up: number,
  step: number,
  stepPhase: number,
  phase0: number,
) => void;

/** The kernel in plain JS, over arrays instead of pointers (same arithmetic as the WebAssembly one). */
export function firJs(
  input: Float32Array,
  output: Float32Array,
  count: number,
  coefs: Float32Array,
  taps: number,
  up: number,
  step: number,
  stepPhase: number,
  phase0: number,
): void {
  let base = 0;
  let phase = phase0;
  for (let k = 0; k < count; k++) {
    const row = phase * taps;
    let a0 = 0;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    for (let m = 0; m < taps; m += 4) {
      a0 += coefs[row + m]! * input[base + m]!;
      a1 += coefs[row + m + 1]! * input[base + m + 1]!;
      a2 += coefs[row + m + 2]! * input[base + m + 2]!;
      a3 += coefs[row + m + 3]! * input[base + m + 3]!;
    }
    output[k] = a0 + a1 + a2 + a3;
    base += step;
    phase += stepPhase;
    if (phase >= up) {
      phase -= up;
      base += 1;
    }
  }
}

/** Unsigned LEB128. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/**
 * The WebAssembly module of the kernel, assembled here so that no binary is checked in. One function,
 * `fir`, with the {@link FirKernel} signature (pointers are byte offsets into the imported
 * `env.memory`).
 */
function firModule(): Uint8Array {
  const i32 = 0x7f;
  const v128 = 0x7b;
  const get = (i: number) => [0x20, ...leb(i)];
  const set = (i: number) => [0x21, ...leb(i)];
  const tee = (i: number) => [0x22, ...leb(i)];
  const constI32 = (n: number) => [0x41, ...leb(n)]; // n < 64: its signed LEB128 is the same
  const [add, sub, mul, shl, ltU, geU] = [[0x6a], [0x6b], [0x6c], [0x74], [0x49], [0x4f]];
  const simd = (op: number, ...immediates: number[]) => [0xfd, ...leb(op), ...immediates];
  const v128Load = simd(0x00, 0, 0); // align 1, offset 0: unaligned loads are allowed
  const [f32x4Add, f32x4Mul] = [simd(0xe4), simd(0xe6)];
  const lane = (l: number) => simd(0x1f, l); // f32x4.extract_lane
  const f32Add = [0x92];
  const f32Store = [0x38, 2, 0];
  // Parameters 0-8 (as in FirKernel), then locals.
  const [inPtr, outPtr, count, coefPtr, taps, up, step, stepPhase, phase0] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [k, x, phase, row, end, acc] = [9, 10, 11, 12, 13, 14];
  // One array per step of the loop, in WebAssembly text terms.
  const body = [
    [2, 5, i32, 1, v128], // (local i32 x 5) (local v128)
    [...get(inPtr), ...set(x)], // x = inPtr: byte address of input[base]
    [...get(phase0), ...set(phase)],
    [0x02, 0x40, 0x03, 0x40], // block, loop (over k)
    [...get(k), ...get(count), ...geU, 0x0d, 1], // br_if out when k >= count
    [...get(coefPtr), ...get(phase), ...get(taps), ...mul, ...constI32(2), ...shl, ...add, ...set(row)],
    [...get(row), ...get(taps), ...constI32(2), ...shl, ...add, ...set(end)],
    [...simd(0x0c, ...new Array<number>(16).fill(0)), ...set(acc)], // acc = v128.const 0
    [...get(x), ...set(inPtr)], // inPtr is free now: it walks the input under the taps
    [0x03, 0x40], // loop (over the taps, four at a time)
    [...get(acc), ...get(row), ...v128Load, ...get(inPtr), ...v128Load], // four taps, four samples
    [...f32x4Mul, ...f32x4Add, ...set(acc)], // acc += taps * samples
    [...get(inPtr), ...constI32(16), ...add, ...set(inPtr)],
    [...get(row), ...constI32(16), ...add, ...tee(row), ...get(end), ...ltU, 0x0d, 0], // br_if loop: row < end
    [0x0b], // end loop
    [...get(outPtr), ...get(k), ...constI32(2), ...shl, ...add], // &output[k]
    [...get(acc), ...lane(0), ...get(acc), ...lane(1), ...f32Add],
    [...get(acc), ...lane(2), ...get(acc), ...lane(3), ...f32Add, ...f32Add, ...f32Store],
    [...get(x), ...get(step), ...constI32(2), ...shl, ...add, ...set(x)], // base += step
    [...get(phase), ...get(stepPhase), ...add, ...tee(phase), ...get(up), ...geU], // phase += stepPhase
    [0x04, 0x40], // if phase >= up
    [...get(phase), ...get(up), ...sub, ...set(phase)], // phase -= up
    [...get(x), ...constI32(4), ...add, ...set(x)], // base += 1
    [0x0b], // end if
    [...get(k), ...constI32(1), ...add, ...set(k)],
    [0x0c, 0], // br loop: next k
    [0x0b, 0x0b, 0x0b], // end loop, end block, end function
  ].flat();
  const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];
  const section = (id: number, bytes: number[]) => [id, ...leb(bytes.length), ...bytes];
  const name = (text: string) => [...leb(text.length), ...Array.from(text, (c) => c.charCodeAt(0))];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, vec([[0x60, ...vec(new Array(9).fill([i32])), 0x00]])), // type: (i32 x 9) -> ()
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])), // import memory, min 1 page
    ...section(3, vec([[0x00]])), // one function of type 0
    ...section(7, vec([[...name('fir'), 0x00, 0x00]])), // export it as "fir"
    ...section(10, vec([[...leb(body.length), ...body]])),
  ]);
}

/** Minimal typings of the WebAssembly global (this project compiles without the DOM library). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

/** The instantiated WebAssembly kernel and the memory its pointers index. */
export interface SimdKernel {
  memory: WasmMemory;
  fir: FirKernel;
}

/** undefined: not tried yet; null: this runtime has no WebAssembly SIMD. */
let simdKernel: SimdKernel | null | undefined;

/** The WebAssembly SIMD kernel, instantiated on first use; null where this runtime cannot run it. */
export function loadSimdKernel(): SimdKernel | null {
  if (simdKernel !== undefined) return simdKernel;
  simdKernel = null;
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  try {
    const bytes = firModule();
    if (wasm?.validate(bytes)) {
      const memory = new wasm.Memory({ initial: 1 });
      const instance = new wasm.Instance(new wasm.Module(bytes), { env: { memory } });
      simdKernel = { memory, fir: instance.exports['fir'] as FirKernel };
    }
  } catch {
    // No SIMD (or no WebAssembly at all): the JS loop does the work.
  }
  return simdKernel;
}

/** Which kernel `resample` (resample.ts) runs here: 'simd' (WebAssembly) or 'js' (this runtime has no SIMD). */
export function resampleKernel(): 'simd' | 'js' {
  return loadSimdKernel() ? 'simd' : 'js';
}
