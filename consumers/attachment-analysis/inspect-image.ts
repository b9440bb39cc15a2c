/**
 * Image facts and a thumbnail, with sharp. The header is read first, without any pixel limit so the
 * declared size can be reported (sharp's `metadata()` otherwise refuses large images itself, with no
 * sizes); an image over the pixel limit is refused there, before anything is decoded. Only then is the
 * image decoded, with `limitInputPixels` as a second guard and `failOn: 'error'` so damaged or cut-off
 * pixel data fails instead of producing a half-grey thumbnail.
 */
import sharp from 'sharp';
import type { Metadata } from 'sharp';

// Every image is read once: libvips' operation cache (50 MB by default) would only hold memory.
sharp.cache(false);

/** What is recorded about an image (the `image` field of `attachment.analyzed`). */
export interface ImageFacts {
  /** Pixels across, as displayed (after the EXIF orientation is applied). */
  width: number;
  /** Pixels down, as displayed. */
  height: number;
  /** sharp's name of the format: `jpeg`, `png`, `gif`, `webp`, `tiff`, `avif`. */
  format: string;
  /** The EXIF orientation tag (1 to 8) when the image has one, else null. */
  orientation: number | null;
}

/** What the image inspection found. */
export type ImageOutcome =
  | { ok: true; image: ImageFacts; thumbnail: Buffer }
  | { ok: false; reason: string; image: ImageFacts | null };

/** Options of {@link inspectImage}. */
export interface ImageInspectionOptions {
  /** Images declaring more pixels (width × height) are refused without decoding. */
  maxPixels: number;
  /** Longest side of the thumbnail, in pixels; smaller images are not enlarged. */
  thumbnailSize: number;
  /** Epoch milliseconds by which decoding must end; sharp is told to give up then too. */
  deadline: number;
}

/** Detected types whose images sharp reads and Postroom previews (RULES.md, rule 6). */
export const PREVIEWABLE_TYPES: ReadonlySet<string> = new Set([
  'image/jpeg',
  'image/png',
  'image/gif',
  'image/webp',
  'image/tiff',
  'image/avif',
]);

/** Thrown when sharp stops because the time limit passed; the caller turns it into a verdict. */
export class ImageTimeoutError extends Error {
  constructor(cause: unknown) {
    super('image decoding passed the time limit', { cause });
    this.name = 'ImageTimeoutError';
  }
}

/**
 * Reads the header of the image at `path` (or in that Buffer) (a `label` such as "JPEG image" is used in reasons), refuses
 * it when it declares more than `maxPixels`, else records its facts and makes a WebP thumbnail with the
 * EXIF orientation applied. Content problems come back as `{ ok: false, reason }`; a passed deadline
 * throws {@link ImageTimeoutError}.
 */
export async function inspectImage(
  path: string | Buffer,
  label: string,
  options: ImageInspectionOptions,
): Promise<ImageOutcome> {
  let header: Metadata;
  try {
    // limitInputPixels: false, or metadata() itself throws "exceeds pixel limit" and we lose the sizes;
    // it reads the header only, so this costs the same for a 10^10-pixel image as for a small one
    header = await sharp(path, { limitInputPixels: false }).metadata();
  } catch (err) {
    return { ok: false, reason: damaged(label, err), image: null };
  }
  const image = factsOf(header);
  if (header.width * header.height > options.maxPixels) {
    return { ok: false, reason: tooManyPixels(header.width, header.height, options.maxPixels), image };
  }
  const size = options.thumbnailSize;
  try {
    const thumbnail = await sharp(path, {
      limitInputPixels: options.maxPixels,
      failOn: 'error',
      autoOrient: true,
    })
      .resize({ width: size, height: size, fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 80 })
      .timeout({ seconds: Math.max(1, Math.ceil((options.deadline - Date.now()) / 1000)) })
      .toBuffer();
    return { ok: true, image, thumbnail };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/^timeout/i.test(message)) throw new ImageTimeoutError(err);
    // the header was trusted above; a decoder that finds more pixels than declared still stops here
    if (/pixel limit/i.test(message)) {
      return { ok: false, reason: tooManyPixels(header.width, header.height, options.maxPixels), image };
    }
    return { ok: false, reason: damaged(label, err), image };
  }
}

function factsOf(header: Metadata): ImageFacts {
  const orientation = header.orientation;
  const format = header.format === 'heif' && header.compression === 'av1' ? 'avif' : header.format;
  return {
    width: header.autoOrient?.width ?? header.width,
    height: header.autoOrient?.height ?? header.height,
    format: String(format),
    orientation: orientation !== undefined && orientation >= 1 && orientation <= 8 ? orientation : null,
  };
}

function megapixels(pixels: number): string {
  const mp = pixels / 1_000_000;
  return mp >= 10 ? String(Math.round(mp)) : String(Math.round(mp * 10) / 10);
}

function tooManyPixels(width: number, height: number, maxPixels: number): string {
  return (
    `The image declares ${width} × ${height} pixels (${megapixels(width * height)} megapixels), more than ` +
    `the limit of ${megapixels(maxPixels)} megapixels, so it was refused without being decoded.`
  );
}

function damaged(label: string, err: unknown): string {
  const detail = ((err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '')
    .replace(/^Vips\w*:\s*/, '')
    .slice(0, 200);
  return `The ${label} is damaged or incomplete, so it cannot be shown (${detail}).`;
}
