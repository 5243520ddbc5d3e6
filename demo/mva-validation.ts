/**
 * A small stand-in for Skatteetaten's VAT-return validation: checks that the posted XML is a
 * well-formed `mvaMeldingDto` and applies a few of the published rules (R018: the lines add up
 * to `fastsattMerverdiavgift`; R019: VAT equals base × rate; R082: whole kroner only).
 * The answer is a `valideringsresultat` document, returned even for invalid returns.
 */

export type Valideringsstatus = 'GYLDIG' | 'UGYLDIG';

export interface Valideringsfeil {
  kontrollnummer: string;
  /** Path to the offending element. */
  stifinner: string;
  beskrivelse: string;
}

export interface Valideringsresultat {
  status: Valideringsstatus;
  feil: Valideringsfeil[];
}

const ROOT = 'mvaMeldingDto';
const GRUNNLAG_PATH = `/${ROOT}/skattegrunnlagOgBeregnetSkatt`;

export function validateMvaMelding(xml: string): Valideringsresultat {
  const structureError = checkWellFormed(xml);
  if (structureError) return invalid([{ kontrollnummer: 'SKJEMA', stifinner: '/', beskrivelse: structureError }]);

  const feil: Valideringsfeil[] = [];
  const grunnlag = elements(xml, 'skattegrunnlagOgBeregnetSkatt')[0];
  if (grunnlag === undefined) {
    return invalid([{ kontrollnummer: 'SKJEMA', stifinner: GRUNNLAG_PATH, beskrivelse: 'skattegrunnlagOgBeregnetSkatt mangler' }]);
  }

  const periode = elements(grunnlag, 'skattleggingsperiode')[0];
  if (periode === undefined) {
    feil.push({ kontrollnummer: 'SKJEMA', stifinner: `${GRUNNLAG_PATH}/skattleggingsperiode`, beskrivelse: 'skattleggingsperiode mangler' });
  } else if (!/^\d{4}$/.test(elements(periode, 'aar')[0]?.trim() ?? '')) {
    feil.push({ kontrollnummer: 'SKJEMA', stifinner: `${GRUNNLAG_PATH}/skattleggingsperiode/aar`, beskrivelse: 'aar må være et årstall' });
  }

  const orgnr = elements(xml, 'organisasjonsnummer')[0]?.trim();
  if (!orgnr || !/^\d{9}$/.test(orgnr)) {
    feil.push({ kontrollnummer: 'SKJEMA', stifinner: `/${ROOT}/skattepliktig/organisasjonsnummer`, beskrivelse: 'organisasjonsnummer må ha 9 siffer' });
  }

  const fastsatt = amount(elements(grunnlag, 'fastsattMerverdiavgift')[0]);
  let sum = 0;
  elements(grunnlag, 'mvaSpesifikasjonslinje').forEach((linje, i) => {
    const path = `${GRUNNLAG_PATH}/mvaSpesifikasjonslinje[${i + 1}]`;
    const avgift = amount(elements(linje, 'merverdiavgift')[0]);
    const base = amount(elements(linje, 'grunnlag')[0]);
    const sats = amount(elements(linje, 'sats')[0]);
    for (const [name, value] of [['merverdiavgift', avgift], ['grunnlag', base]] as const) {
      if (value !== undefined && !Number.isInteger(value)) {
        feil.push({ kontrollnummer: 'R082', stifinner: `${path}/${name}`, beskrivelse: 'beløp skal ikke ha desimaler' });
      }
    }
    if (avgift === undefined) {
      feil.push({ kontrollnummer: 'SKJEMA', stifinner: `${path}/merverdiavgift`, beskrivelse: 'merverdiavgift mangler' });
      return;
    }
    sum += avgift;
    if (base !== undefined && sats !== undefined && Math.abs(Math.abs(avgift) - Math.abs((base * sats) / 100)) >= 1) {
      feil.push({ kontrollnummer: 'R019', stifinner: `${path}/merverdiavgift`, beskrivelse: 'beregnet avgift er ulik grunnlag ganger sats' });
    }
  });

  if (fastsatt === undefined) {
    feil.push({ kontrollnummer: 'SKJEMA', stifinner: `${GRUNNLAG_PATH}/fastsattMerverdiavgift`, beskrivelse: 'fastsattMerverdiavgift mangler' });
  } else if (fastsatt !== sum) {
    feil.push({
      kontrollnummer: 'R018',
      stifinner: `${GRUNNLAG_PATH}/fastsattMerverdiavgift`,
      beskrivelse: `summen av merverdiavgift i linjene (${sum}) er ulik fastsattMerverdiavgift (${fastsatt})`,
    });
  }

  return feil.length ? invalid(feil) : { status: 'GYLDIG', feil: [] };
}

export function renderValideringsresultat(result: Valideringsresultat): string {
  const feil = result.feil.map((f) => `  <valideringsfeil>
    <kontrollnummer>${escapeXml(f.kontrollnummer)}</kontrollnummer>
    <stifinner>${escapeXml(f.stifinner)}</stifinner>
    <beskrivelse>${escapeXml(f.beskrivelse)}</beskrivelse>
  </valideringsfeil>
`).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>
<valideringsresultat xmlns="no:skatteetaten:fastsetting:avgift:mva:valideringsresultat:v1">
  <status>${result.status}</status>
${feil}</valideringsresultat>
`;
}

function invalid(feil: Valideringsfeil[]): Valideringsresultat {
  return { status: 'UGYLDIG', feil };
}

/** Tag balance and the root element; DTDs are refused (no entity expansion, ever). */
function checkWellFormed(xml: string): string | undefined {
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
  if (root === undefined || localName(root) !== ROOT) return `rotelementet må være ${ROOT}`;
  return undefined;
}

/** Inner XML of every element with this local name (any namespace prefix), outermost first. */
function elements(xml: string, name: string): string[] {
  const pattern = new RegExp(`<(?:[\\w.-]+:)?${name}(?:\\s[^>]*)?>([\\s\\S]*?)</(?:[\\w.-]+:)?${name}>`, 'g');
  return [...xml.matchAll(pattern)].map((m) => m[1] ?? '');
}

function amount(text: string | undefined): number | undefined {
  if (text === undefined || !/^\s*-?\d+(\.\d+)?\s*$/.test(text)) return undefined;
  return Number(text);
}

function localName(name: string): string {
  return name.includes(':') ? name.slice(name.indexOf(':') + 1) : name;
}

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}
