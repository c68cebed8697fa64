/** Messages between the pipeline and the audio DSP thread. Sample data never crosses back: WAV bytes do. */
export interface DspRequest {
  id: number;
  payload: Uint8Array;
  contentType: string | undefined;
  limits: { maxBytes: number; maxSeconds: number; maxChannels: number };
  /** longest voiced segment, s */
  segmentSeconds: number;
  /** kept before and after speech, ms */
  padMs: number;
}

/** A voiced stretch of the clip, as a 16 kHz mono 16-bit WAV. */
export interface DspClip {
  /** offset in the source clip, s */
  startSeconds: number;
  seconds: number;
  wav: Uint8Array;
}

export type DspReply =
  | {
      id: number;
      ok: true;
      /** the payload's form, e.g. wav, L16 */
      format: string;
      /** of the source */
      sampleRate: number;
      channels: number;
      /** length of the whole clip, s */
      seconds: number;
      /** silence left out, s */
      droppedSeconds: number;
      ts?: number;
      prompt?: string;
      clips: DspClip[];
    }
  | { id: number; ok: false; code: string; reason: string };
