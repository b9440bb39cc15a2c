/**
 * The wording of reasons: plain sentences a sender or an operator understands, naming the file, what it
 * really is and what it claimed to be. Kept apart from the rules so both stay short.
 */
import {
  isDocumentOrImageType,
  isGenericType,
  normalizeType,
  shortName,
  typeOfExtension,
  typesAgree,
} from './file-kinds.js';

/** What the sender said about a file: its name and declared type. */
export interface Claim {
  /** Name as filed. */
  filename: string;
  /** Declared MIME type, as sent. */
  declaredType: string;
}

const capitalize = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);

/** Why program or script content (`kind`, such as "a Windows program") is quarantined (rule 3). */
export function programReason(kind: string, claim: Claim): string {
  const declared = normalizeType(claim.declaredType);
  const disguises: string[] = [];
  if (typeOfExtension(claim.filename) !== null) disguises.push(`named "${shortName(claim.filename)}"`);
  if (isDocumentOrImageType(declared)) disguises.push(`declared as ${declared}`);
  if (disguises.length > 0) {
    return `It is ${kind}, but it is ${disguises.join(' and ')}; programs and scripts disguised as documents or images are quarantined.`;
  }
  return `It is ${kind} ("${shortName(claim.filename)}"); Postroom files documents and images, not programs, so programs and scripts are quarantined.`;
}

/** Why a file whose name runs programs (`.exe`, `.js` ...) is quarantined, whatever it holds (rule 4). */
export function programNameReason(filename: string, ext: string): string {
  return `Its name ("${shortName(filename)}") ends in .${ext}, a kind of file that runs programs or scripts when opened; Postroom files documents and images, not programs, so it is quarantined.`;
}

/** Why an SVG with script is quarantined (rule 7). */
export function svgScriptReason(filename: string): string {
  return `It is an SVG image ("${shortName(filename)}") that carries a script, which could run when the image is opened; images with scripts are quarantined.`;
}

/**
 * Why a harmless file is accepted (rule 8): what it is (`label`, with `extra` facts such as its size
 * in pixels), and whether that matches its declared type and its name.
 */
export function acceptedReason(
  label: string,
  detectedType: string | null,
  claim: Claim,
  extra?: string,
): string {
  const declared = normalizeType(claim.declaredType);
  const generic = isGenericType(declared);
  if (detectedType === null) {
    const sent = generic ? '' : `; it was declared as ${declared}`;
    return `Its type could not be recognised from its contents, and no program or script was found in them${sent}.`;
  }
  const head = capitalize(extra ? `${label}, ${extra}` : label);
  const named = typeOfExtension(claim.filename);
  const mismatches: string[] = [];
  if (!generic && !typesAgree(detectedType, declared)) mismatches.push(`its declared type (${declared})`);
  if (named !== null && !typesAgree(detectedType, named))
    mismatches.push(`its name ("${shortName(claim.filename)}")`);
  if (mismatches.length > 0) {
    return `${head}. This does not match ${mismatches.join(' or ')}, so it is recorded as ${detectedType}.`;
  }
  if (generic) {
    const sent = declared === '' ? 'without a type' : `as ${declared}`;
    return `${head}. It was sent ${sent}, which says nothing about the contents, so its type was taken from the bytes (${detectedType}).`;
  }
  return `${head}, as declared.`;
}
