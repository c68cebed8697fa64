/**
 * The models Outpost knows by name: where to download them, how big they are, what they need.
 *
 * Provenance of the numbers (none could be read from the Hub itself from here; a value that could not be
 * found is left undefined rather than guessed, and `pullModel` then checks what it can):
 * - sizes of the Gemma 3n and the ggml-org Gemma 4 Q8_0 files: byte counts published in an open-source
 *   model catalog (a Swift app's `Catalog` of Hugging Face builds); the E2B Q8_0 size matches a second,
 *   independent pinned catalog.
 * - sha256 of `ggml-org/gemma-3n-E2B-it-GGUF` Q8_0: a pinned catalog that records the LFS oid together with the
 *   commit 989cffab…; the URL below is pinned to that commit so that digest stays true.
 * - sizes and sha256 of the unsloth Gemma 4 Q4_K_M files, size of unsloth's Gemma 4 E2B projector: an
 *   open-source catalog that states they were measured on the Hub repository tree. unsloth re-uploads at
 *   times: if a pull reports a checksum mismatch, the upstream file changed and this entry needs updating.
 * - sha256 of `ggml-org/gemma-4-E2B-it-GGUF` mmproj Q8_0: a download script that took it from the LFS pointer.
 * - the KV-cache bytes per token are rough figures from the same Swift catalog; they only scale estimates.
 *
 * Gemma 3n GGUFs are text-only: llama.cpp has no projector for Gemma 3n's vision and audio encoders
 * (ggml-org/llama.cpp#14429), so no Gemma 3n entry has an `mmproj`. Gemma 4 E2B/E4B GGUFs come with a
 * projector for images and audio (llama.cpp `gemma4`, node-llama-cpp 3.21 knows the architecture).
 */

/** One downloadable file of a catalog entry. */
export interface CatalogFile {
  /** https URL to download from (a Hugging Face `resolve` URL; redirects to the CDN are followed) */
  url: string;
  /** file name in the model directory; may differ from the URL's last segment where upstream names collide */
  fileName: string;
  /** exact size in bytes, when known; undefined: not checked */
  sizeBytes?: number;
  /** lowercase hex sha256 of the whole file (the Hugging Face LFS oid), when known; undefined: not checked */
  sha256?: string;
}

export interface CatalogEntry {
  /** name used on the command line and in `model.name`, e.g. 'gemma-3n-e2b-q4_k_m' */
  name: string;
  /** model family; 'gemma-4' entries need a llama.cpp that knows the `gemma4` architecture */
  family: 'gemma-3n' | 'gemma-4';
  /** effective parameter size: 'E2B' | 'E4B' */
  size: string;
  /** quantization of the weights, e.g. 'Q4_K_M' */
  quant: string;
  /** the model weights */
  model: CatalogFile;
  /** vision (and/or audio) projector, where one exists */
  mmproj?: CatalogFile;
  /** trained context length, tokens */
  contextLength: number;
  /** inputs the model takes with this runtime (text-only where llama.cpp has no projector) */
  modalities: ('text' | 'image' | 'audio')[];
  /** rough resident RAM at 4k context without GPU, bytes, for listing before the file is local */
  approxRamBytes: number;
  /** rough KV-cache bytes per context token (f16), used to scale `approxRamBytes` to other context sizes */
  kvBytesPerToken?: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Context size `approxRamBytes` is stated for, tokens. */
export const APPROX_RAM_CONTEXT = 4096;

/** Compute buffers, tokenizer, allocator slack: what a loaded model takes beyond weights and KV cache (rough). */
const RUNTIME_OVERHEAD_BYTES = 300 * MiB;

function approxRam(weightsBytes: number, kvBytesPerToken: number, projectorBytes = 0): number {
  return weightsBytes + projectorBytes + APPROX_RAM_CONTEXT * kvBytesPerToken + RUNTIME_OVERHEAD_BYTES;
}

const hf = (repo: string, file: string, revision = 'main') =>
  `https://huggingface.co/${repo}/resolve/${revision}/${file}`;

/** Pinned commit of ggml-org/gemma-3n-E2B-it-GGUF whose Q8_0 digest is known. */
const GGML_GEMMA_3N_E2B_REVISION = '989cffaba23976934324f5e3abfabe31b30eb73b';

const GEMMA_3N_CONTEXT = 32_768;
const GEMMA_4_SMALL_CONTEXT = 131_072;
const KV_GEMMA_3N_E2B = 12 * KiB;
const KV_GEMMA_3N_E4B = 14 * KiB;
const KV_GEMMA_4_E2B = 10 * KiB;
const KV_GEMMA_4_E4B = 28 * KiB;
/** Size assumed for a Gemma 4 projector whose exact size is unknown (the E2B F16 one is 985,654,080 bytes). */
const GEMMA_4_PROJECTOR_GUESS = 1_000_000_000;

const gemma3n = (
  size: 'E2B' | 'E4B',
  quant: string,
  model: CatalogFile & { sizeBytes: number },
  kvBytesPerToken: number,
): CatalogEntry => ({
  name: `gemma-3n-${size.toLowerCase()}-${quant.toLowerCase()}`,
  family: 'gemma-3n',
  size,
  quant,
  model,
  contextLength: GEMMA_3N_CONTEXT,
  modalities: ['text'],
  approxRamBytes: approxRam(model.sizeBytes, kvBytesPerToken),
  kvBytesPerToken,
});

const gemma4 = (
  size: 'E2B' | 'E4B',
  quant: string,
  model: CatalogFile & { sizeBytes: number },
  mmproj: CatalogFile,
  kvBytesPerToken: number,
): CatalogEntry => ({
  name: `gemma-4-${size.toLowerCase()}-${quant.toLowerCase()}`,
  family: 'gemma-4',
  size,
  quant,
  model,
  mmproj,
  contextLength: GEMMA_4_SMALL_CONTEXT,
  modalities: ['text', 'image', 'audio'],
  approxRamBytes: approxRam(model.sizeBytes, kvBytesPerToken, mmproj.sizeBytes ?? GEMMA_4_PROJECTOR_GUESS),
  kvBytesPerToken,
});

export const CATALOG: readonly CatalogEntry[] = Object.freeze([
  // ---- Gemma 3n (text-only GGUFs) ---------------------------------------------------------------------
  gemma3n(
    'E2B',
    'Q4_K_M',
    {
      url: hf('unsloth/gemma-3n-E2B-it-GGUF', 'gemma-3n-E2B-it-Q4_K_M.gguf'),
      fileName: 'gemma-3n-E2B-it-Q4_K_M.gguf',
      sizeBytes: 3_026_881_888,
    },
    KV_GEMMA_3N_E2B,
  ),
  gemma3n(
    'E2B',
    'Q8_0',
    {
      url: hf('ggml-org/gemma-3n-E2B-it-GGUF', 'gemma-3n-E2B-it-Q8_0.gguf', GGML_GEMMA_3N_E2B_REVISION),
      fileName: 'gemma-3n-E2B-it-Q8_0.gguf',
      sizeBytes: 4_788_112_064,
      sha256: '038a47c482e7af3009c462b56a7592e1ade3c7862540717aa1d9dee1760c337b',
    },
    KV_GEMMA_3N_E2B,
  ),
  gemma3n(
    'E4B',
    'Q4_K_M',
    {
      url: hf('unsloth/gemma-3n-E4B-it-GGUF', 'gemma-3n-E4B-it-Q4_K_M.gguf'),
      fileName: 'gemma-3n-E4B-it-Q4_K_M.gguf',
      sizeBytes: 4_539_054_208,
    },
    KV_GEMMA_3N_E4B,
  ),
  gemma3n(
    'E4B',
    'Q8_0',
    {
      url: hf('ggml-org/gemma-3n-E4B-it-GGUF', 'gemma-3n-E4B-it-Q8_0.gguf'),
      fileName: 'gemma-3n-E4B-it-Q8_0.gguf',
      sizeBytes: 7_353_292_256,
    },
    KV_GEMMA_3N_E4B,
  ),
  // ---- Gemma 4 (text + image + audio with the projector) -------------------------------------------------
  // unsloth names both projectors `mmproj-F16.gguf`: stored under distinct local names.
  gemma4(
    'E2B',
    'Q4_K_M',
    {
      url: hf('unsloth/gemma-4-E2B-it-GGUF', 'gemma-4-E2B-it-Q4_K_M.gguf'),
      fileName: 'gemma-4-E2B-it-Q4_K_M.gguf',
      sizeBytes: 3_106_738_272,
      sha256: '740185b21d22ceb83a11c3aa62ad5842ef32c70f6096d756bbee85a1e4ec34b8',
    },
    {
      url: hf('unsloth/gemma-4-E2B-it-GGUF', 'mmproj-F16.gguf'),
      fileName: 'mmproj-gemma-4-E2B-it-F16.gguf',
      sizeBytes: 985_654_080,
    },
    KV_GEMMA_4_E2B,
  ),
  gemma4(
    'E4B',
    'Q4_K_M',
    {
      url: hf('unsloth/gemma-4-E4B-it-GGUF', 'gemma-4-E4B-it-Q4_K_M.gguf'),
      fileName: 'gemma-4-E4B-it-Q4_K_M.gguf',
      sizeBytes: 4_977_171_584,
      sha256: '85a896a047553e842f25297ee5b031d64ff30147d9c4af17b1e4b394cd1fab87',
    },
    {
      url: hf('unsloth/gemma-4-E4B-it-GGUF', 'mmproj-F16.gguf'),
      fileName: 'mmproj-gemma-4-E4B-it-F16.gguf',
    },
    KV_GEMMA_4_E4B,
  ),
  gemma4(
    'E2B',
    'Q8_0',
    {
      url: hf('ggml-org/gemma-4-E2B-it-GGUF', 'gemma-4-E2B-it-Q8_0.gguf'),
      fileName: 'gemma-4-E2B-it-Q8_0.gguf',
      sizeBytes: 4_967_494_592,
    },
    {
      url: hf('ggml-org/gemma-4-E2B-it-GGUF', 'mmproj-gemma-4-E2B-it-Q8_0.gguf'),
      fileName: 'mmproj-gemma-4-E2B-it-Q8_0.gguf',
      sha256: '9406f99c16d68cda4f1f0552192dcc99021ea1fc6d2fd50b1dc3ccf30d04b292',
    },
    KV_GEMMA_4_E2B,
  ),
  gemma4(
    'E4B',
    'Q8_0',
    {
      url: hf('ggml-org/gemma-4-E4B-it-GGUF', 'gemma-4-E4B-it-Q8_0.gguf'),
      fileName: 'gemma-4-E4B-it-Q8_0.gguf',
      sizeBytes: 8_031_240_160,
    },
    {
      url: hf('ggml-org/gemma-4-E4B-it-GGUF', 'mmproj-gemma-4-E4B-it-Q8_0.gguf'),
      fileName: 'mmproj-gemma-4-E4B-it-Q8_0.gguf',
    },
    KV_GEMMA_4_E4B,
  ),
]);

/** The catalog entry called `name` (case-insensitive), or undefined. */
export function findCatalogEntry(name: string): CatalogEntry | undefined {
  const wanted = name.trim().toLowerCase();
  return CATALOG.find((entry) => entry.name === wanted);
}
