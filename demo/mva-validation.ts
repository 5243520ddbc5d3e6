/**
 * A small stand-in for Skatteetaten's VAT-return validation: checks that the posted XML is a
 * well-formed `mvaMeldingDto` and applies a few of the published rules (R018: the lines add up
 * to `fastsattMerverdiavgift`; R019: VAT equals base × rate; R020: a negative output-VAT line
 * needs a `merknad`; R082: whole kroner only). The answer is a `valideringsresultat`, returned
 * with HTTP 200 even for invalid returns.
 *
 * Two published shapes exist, and they disagree:
 *  - the schema no.skatteetaten.fastsetting.avgift.mva.valideringsresultat.v1.xsd (mva-meldingen
 *    repository, docs/informasjonsmodell_filer/xsd/): namespace
 *    `no:skatteetaten:fastsetting:avgift:mva:valideringsresultat:v1`, one `avvikVedMeldingslevering`
 *    and zero or more `avvik` (`stiTilAvvik`, `mvaKode`?, `avviksinformasjon`+ with `begrunnelse`,
 *    `avvikstype`, `avvikKode`, `regelDefinisjon`, `detaljer`?). The feedback file
 *    valideringsresultat.xml in the documentation's example submission has this shape.
 *  - the example on the API page (skatteetaten.github.io/mva-meldingen/documentation/api/,
 *    "Valider skattemelding" and "Fullfør utfylling"): no namespace, `<status>UGYLDIG_SKATTEMELDING</status>`
 *    and `valideringsfeil` (`stiTilFeil`, `valideringsDetaljer` with `feilmelding`, `alvorlighetsgrad`,
 *    `avvikKode`, `informasjon`).
 * The schema is the contract and is the default (`xsd`); `api-eksempel` renders the API page's shape
 * for clients written against that example. Only UGYLDIG_SKATTEMELDING appears there; the other
 * statuses are the schema's Avvikstype values written the same way (upper case, `_` for spaces).
 *
 * Severity: only "ugyldig skattemelding" makes a return invalid. The implementation guide
 * (docs/documentation/implementasjonsguide/) says a return with deviations is valid, is processed
 * and may be submitted; it recommends stopping only on UGYLDIG_SKATTEMELDING. Which severity each
 * real rule has is not published; the look-alike's choice is in RULES below.
 */

export type Avvikstype = 'ingen avvik' | 'avvikende skattemelding' | 'mangelfull skattemelding' | 'ugyldig skattemelding';

/** Least to most severe, as the schema lists them. */
export const AVVIKSTYPER: readonly Avvikstype[] = ['ingen avvik', 'avvikende skattemelding', 'mangelfull skattemelding', 'ugyldig skattemelding'];

export interface Avviksinformasjon {
  begrunnelse: string;
  avvikstype: Avvikstype;
  avvikKode: string;
  regelDefinisjon: string;
  detaljer?: string;
}

export interface Avvik {
  stiTilAvvik: string;
  mvaKode?: string;
  avviksinformasjon: Avviksinformasjon[];
}

export interface Valideringsresultat {
  avvikVedMeldingslevering: Avvikstype;
  avvik: Avvik[];
}

export type ResultFormat = 'xsd' | 'api-eksempel';

export const VALIDERINGSRESULTAT_NAMESPACE = 'no:skatteetaten:fastsetting:avgift:mva:valideringsresultat:v1';
const ROOT = 'mvaMeldingDto';
const GRUNNLAG_PATH = `/${ROOT}/skattegrunnlagOgBeregnetSkatt`;

/** The look-alike's rules: code, severity and the published rule text. */
const RULES = {
  R001: { avvikKode: 'MvaMeldingsinnhold_Xml_SkjemaValideringsfeil', avvikstype: 'ugyldig skattemelding', regel: 'Mva-meldingen skal være på gyldig format' },
  R018: { avvikKode: 'SumMerverdiavgiftUlikFastsattMerverdiavgift', avvikstype: 'ugyldig skattemelding', regel: 'Summen av merverdiavgift for hver avgiftslinje er ikke lik feltet fastsattMerverdiavgift' },
  R019: { avvikKode: 'BeregnetAvgiftUlikGrunnlagGangerSats', avvikstype: 'avvikende skattemelding', regel: 'Beregnet avgift i avgiftslinje er ulik produktet av grunnlag og sats' },
  R020: { avvikKode: 'MerknadMotsattFortegnUtgaaendeAvgiftMangler', avvikstype: 'mangelfull skattemelding', regel: 'Merknad til beløp med motsatt fortegn som gjelder grunnlag og utgående avgift mangler' },
  R082: { avvikKode: 'BeloepMedDesimaler', avvikstype: 'ugyldig skattemelding', regel: 'Innsendte beløp skal ikke inneholde desimaler' },
} as const satisfies Record<string, { avvikKode: string; avvikstype: Avvikstype; regel: string }>;

type Rule = keyof typeof RULES;

/** mva-koder for output VAT (utgående) in the SAF-T code list; a negative amount on them needs a merknad (R020). */
const UTGAAENDE_KODER = new Set(['3', '5', '6', '31', '32', '33', '51', '52']);

export function validateMvaMelding(xml: string): Valideringsresultat {
  const avvik: Avvik[] = [];
  const add = (rule: Rule, sti: string, detaljer?: string, mvaKode?: string) => {
    const { avvikKode, avvikstype, regel } = RULES[rule];
    avvik.push({
      stiTilAvvik: sti,
      ...(mvaKode ? { mvaKode } : {}),
      avviksinformasjon: [{ begrunnelse: regel, avvikstype, avvikKode, regelDefinisjon: rule, ...(detaljer ? { detaljer } : {}) }],
    });
  };
  const done = () => ({ avvikVedMeldingslevering: worst(avvik), avvik });

  const structureError = checkWellFormed(xml);
  if (structureError) {
    add('R001', '/', structureError);
    return done();
  }
  const grunnlag = elements(xml, 'skattegrunnlagOgBeregnetSkatt')[0];
  if (grunnlag === undefined) {
    add('R001', GRUNNLAG_PATH, 'skattegrunnlagOgBeregnetSkatt mangler');
    return done();
  }

  const periode = elements(grunnlag, 'skattleggingsperiode')[0];
  if (periode === undefined) {
    add('R001', `${GRUNNLAG_PATH}/skattleggingsperiode`, 'skattleggingsperiode mangler');
  } else if (!/^\d{4}$/.test(elements(periode, 'aar')[0]?.trim() ?? '')) {
    add('R001', `${GRUNNLAG_PATH}/skattleggingsperiode/aar`, 'aar må være et årstall');
  }

  const orgnr = elements(xml, 'organisasjonsnummer')[0]?.trim();
  if (!orgnr || !/^\d{9}$/.test(orgnr)) {
    add('R001', `/${ROOT}/skattepliktig/organisasjonsnummer`, 'organisasjonsnummer må ha 9 siffer');
  }

  const fastsatt = amount(elements(grunnlag, 'fastsattMerverdiavgift')[0]);
  let sum = 0;
  elements(grunnlag, 'mvaSpesifikasjonslinje').forEach((linje, i) => {
    const path = `${GRUNNLAG_PATH}/mvaSpesifikasjonslinje[${i + 1}]`;
    const kode = elements(linje, 'mvaKode')[0]?.trim();
    const avgift = amount(elements(linje, 'merverdiavgift')[0]);
    const base = amount(elements(linje, 'grunnlag')[0]);
    const sats = amount(elements(linje, 'sats')[0]);
    for (const [name, value] of [['merverdiavgift', avgift], ['grunnlag', base]] as const) {
      if (value !== undefined && !Number.isInteger(value)) add('R082', `${path}/${name}`, `${value} har desimaler`, kode);
    }
    if (avgift === undefined) {
      add('R001', `${path}/merverdiavgift`, 'merverdiavgift mangler', kode);
      return;
    }
    sum += avgift;
    if (base !== undefined && sats !== undefined && Math.abs(Math.abs(avgift) - Math.abs((base * sats) / 100)) >= 1) {
      add('R019', `${path}/merverdiavgift`, `${base} × ${sats} % er ${(base * sats) / 100}, ikke ${avgift}`, kode);
    }
    if (kode !== undefined && UTGAAENDE_KODER.has(kode) && avgift < 0 && elements(linje, 'merknad')[0] === undefined) {
      add('R020', `${path}/merknad`, undefined, kode);
    }
  });

  if (fastsatt === undefined) {
    add('R001', `${GRUNNLAG_PATH}/fastsattMerverdiavgift`, 'fastsattMerverdiavgift mangler');
  } else if (fastsatt !== sum) {
    add('R018', `${GRUNNLAG_PATH}/fastsattMerverdiavgift`, `summen av merverdiavgift i linjene (${sum}) er ulik fastsattMerverdiavgift (${fastsatt})`);
  }
  return done();
}

/** Whether the return may be submitted: everything but "ugyldig skattemelding" (see the module comment). */
export function isSubmittable(result: Valideringsresultat): boolean {
  return result.avvikVedMeldingslevering !== 'ugyldig skattemelding';
}

/** `ugyldig skattemelding` → `UGYLDIG_SKATTEMELDING`, as in the API page's example. */
export function statusCode(avvikstype: Avvikstype): string {
  return avvikstype.toUpperCase().replaceAll(' ', '_');
}

export function renderValideringsresultat(result: Valideringsresultat, format: ResultFormat = 'xsd'): string {
  return format === 'api-eksempel' ? renderApiExample(result) : renderXsd(result);
}

/** The schema's shape, element order as in its sequences. */
function renderXsd(result: Valideringsresultat): string {
  const avvik = result.avvik.map((a) => {
    const info = a.avviksinformasjon.map((i) => `    <avviksinformasjon>
      <begrunnelse>${escapeXml(i.begrunnelse)}</begrunnelse>
      <avvikstype>${i.avvikstype}</avvikstype>
      <avvikKode>${escapeXml(i.avvikKode)}</avvikKode>
      <regelDefinisjon>${escapeXml(i.regelDefinisjon)}</regelDefinisjon>
${i.detaljer !== undefined ? `      <detaljer>${escapeXml(i.detaljer)}</detaljer>\n` : ''}    </avviksinformasjon>
`).join('');
    return `  <avvik>
    <stiTilAvvik>${escapeXml(a.stiTilAvvik)}</stiTilAvvik>
${a.mvaKode !== undefined ? `    <mvaKode>${escapeXml(a.mvaKode)}</mvaKode>\n` : ''}${info}  </avvik>
`;
  }).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>
<valideringsresultat xmlns="${VALIDERINGSRESULTAT_NAMESPACE}">
  <avvikVedMeldingslevering>${result.avvikVedMeldingslevering}</avvikVedMeldingslevering>
${avvik}</valideringsresultat>
`;
}

/** The API page's example shape: no namespace, `status` and `valideringsfeil`. */
function renderApiExample(result: Valideringsresultat): string {
  const feil = result.avvik.flatMap((a) => a.avviksinformasjon.map((i) => `  <valideringsfeil>
    <stiTilFeil>${escapeXml(a.stiTilAvvik)}</stiTilFeil>
    <valideringsDetaljer>
      <feilmelding>${escapeXml(i.begrunnelse)}</feilmelding>
      <alvorlighetsgrad>${statusCode(i.avvikstype)}</alvorlighetsgrad>
      <avvikKode>${escapeXml(i.avvikKode)}</avvikKode>
      <informasjon>${escapeXml(`${i.regelDefinisjon}${i.detaljer ? `: ${i.detaljer}` : ''}`)}</informasjon>
    </valideringsDetaljer>
  </valideringsfeil>
`)).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>
<valideringsresultat>
  <status>${statusCode(result.avvikVedMeldingslevering)}</status>
${feil}</valideringsresultat>
`;
}

function worst(avvik: Avvik[]): Avvikstype {
  let index = 0;
  for (const a of avvik) for (const i of a.avviksinformasjon) index = Math.max(index, AVVIKSTYPER.indexOf(i.avvikstype));
  return AVVIKSTYPER[index]!;
}

/** Tag balance and the root element; DTDs are refused (no entity expansion, ever). */
export function checkWellFormed(xml: string, expectedRoot: string = ROOT): string | undefined {
  if (/<!DOCTYPE/i.test(xml)) return 'DTD er ikke tillatt';
  const body = xml
    .replace(/^\uFEFF/, '')
    .replace(/<\?[\s\S]*?\?>/g, '')
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '');
  const stack: string[] = [];
  let root: string | undefined;
  let last = 0;
  for (const tag of body.matchAll(/<(\/?)([A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)((?:\s+[^\s=>/]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/g)) {
    const between = body.slice(last, tag.index);
    if (between.includes('<')) return 'XML-dokumentet er ikke velformet';
    if (stack.length === 0 && root !== undefined && between.trim()) return 'tekst utenfor rotelementet';
    last = (tag.index ?? 0) + tag[0].length;
    const [, closing, name = '', , selfClosing] = tag;
    if (closing) {
      if (stack.pop() !== name) return `uventet slutt-tagg </${name}>`;
    } else {
      if (stack.length === 0) {
        if (root !== undefined) return 'mer enn ett rotelement';
        root = name;
      }
      if (!selfClosing) stack.push(name);
    }
  }
  const rest = body.slice(last);
  if (rest.includes('<') || (root !== undefined && rest.trim())) return 'XML-dokumentet er ikke velformet';
  if (stack.length) return `elementet <${stack.at(-1) ?? ''}> er ikke avsluttet`;
  if (root === undefined || localName(root) !== expectedRoot) return `rotelementet må være ${expectedRoot}`;
  return undefined;
}

/** Inner XML of every element with this local name (any namespace prefix), outermost first. */
export function elements(xml: string, name: string): string[] {
  const pattern = new RegExp(`<(?:[\\w.-]+:)?${name}(?:\\s[^>]*)?>([\\s\\S]*?)</(?:[\\w.-]+:)?${name}>`, 'g');
  return [...xml.matchAll(pattern)].map((m) => m[1] ?? '');
}

export function amount(text: string | undefined): number | undefined {
  if (text === undefined || !/^\s*-?\d+(\.\d+)?\s*$/.test(text)) return undefined;
  return Number(text);
}

function localName(name: string): string {
  return name.includes(':') ? name.slice(name.indexOf(':') + 1) : name;
}

export function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}
