/**
 * VAT returns (mva-melding, `mvaMeldingDto`) for the demo page and the tests: one without
 * deviations, one with a deviation only (R019: the VAT on a line is not base × rate; still valid,
 * may be submitted) and one that is invalid (no tax period, and a total that does not match the
 * lines). Plus the submission envelope (`mvaMeldingInnsending`, "konvolutt") that goes with them.
 */

/** The organisation the samples are for (synthetic test organisation number). */
export const DEMO_ORGNR = '310000001';

const NAMESPACE = 'no:skatteetaten:fastsetting:avgift:mva:skattemeldingformerverdiavgift:v1.0';

export const VALID_MVA_MELDING = `<?xml version="1.0" encoding="UTF-8"?>
<mvaMeldingDto xmlns="${NAMESPACE}">
  <innsending>
    <regnskapssystemsreferanse>demo-0001</regnskapssystemsreferanse>
    <regnskapssystem>
      <systemnavn>idporten-bff demo</systemnavn>
      <systemversjon>0.1.0</systemversjon>
    </regnskapssystem>
  </innsending>
  <skattegrunnlagOgBeregnetSkatt>
    <skattleggingsperiode>
      <periode>
        <skattleggingsperiodeToMaaneder>januar-februar</skattleggingsperiodeToMaaneder>
      </periode>
      <aar>2025</aar>
    </skattleggingsperiode>
    <fastsattMerverdiavgift>8500</fastsattMerverdiavgift>
    <mvaSpesifikasjonslinje>
      <mvaKode>3</mvaKode>
      <grunnlag>40000</grunnlag>
      <sats>25</sats>
      <merverdiavgift>10000</merverdiavgift>
    </mvaSpesifikasjonslinje>
    <mvaSpesifikasjonslinje>
      <mvaKode>1</mvaKode>
      <grunnlag>6000</grunnlag>
      <sats>25</sats>
      <merverdiavgift>-1500</merverdiavgift>
    </mvaSpesifikasjonslinje>
  </skattegrunnlagOgBeregnetSkatt>
  <skattepliktig>
    <organisasjonsnummer>${DEMO_ORGNR}</organisasjonsnummer>
  </skattepliktig>
  <meldingskategori>alminnelig</meldingskategori>
</mvaMeldingDto>
`;

export const INVALID_MVA_MELDING = `<?xml version="1.0" encoding="UTF-8"?>
<mvaMeldingDto xmlns="${NAMESPACE}">
  <innsending>
    <regnskapssystemsreferanse>demo-0002</regnskapssystemsreferanse>
    <regnskapssystem>
      <systemnavn>idporten-bff demo</systemnavn>
      <systemversjon>0.1.0</systemversjon>
    </regnskapssystem>
  </innsending>
  <skattegrunnlagOgBeregnetSkatt>
    <fastsattMerverdiavgift>9000</fastsattMerverdiavgift>
    <mvaSpesifikasjonslinje>
      <mvaKode>3</mvaKode>
      <grunnlag>40000</grunnlag>
      <sats>25</sats>
      <merverdiavgift>10000</merverdiavgift>
    </mvaSpesifikasjonslinje>
    <mvaSpesifikasjonslinje>
      <mvaKode>1</mvaKode>
      <grunnlag>6000</grunnlag>
      <sats>25</sats>
      <merverdiavgift>-1500</merverdiavgift>
    </mvaSpesifikasjonslinje>
  </skattegrunnlagOgBeregnetSkatt>
  <skattepliktig>
    <organisasjonsnummer>${DEMO_ORGNR}</organisasjonsnummer>
  </skattepliktig>
  <meldingskategori>alminnelig</meldingskategori>
</mvaMeldingDto>
`;

/** Valid, with one deviation: line 1's VAT is 10 kroner off 40 000 × 25 % (R019); the total matches the lines. */
export const DEVIATING_MVA_MELDING = VALID_MVA_MELDING
  .replace('<regnskapssystemsreferanse>demo-0001<', '<regnskapssystemsreferanse>demo-0003<')
  .replace('<fastsattMerverdiavgift>8500<', '<fastsattMerverdiavgift>8510<')
  .replace('<merverdiavgift>10000<', '<merverdiavgift>10010<');

export interface KonvoluttOptions {
  orgnr?: string;
  meldingskategori?: string;
  /** Element name and value of the period, e.g. ['skattleggingsperiodeToMaaneder', 'januar-februar']; null leaves skattleggingsperiode out. */
  periode?: [string, string] | null;
  aar?: string;
  /** File names of the binary attachments (binaerVedlegg) the submission declares. */
  vedlegg?: string[];
  opprettetAv?: string;
}

/**
 * An `mvaMeldingInnsending` per no.skatteetaten.fastsetting.avgift.mva.mvameldinginnsending.v1.0.xsd,
 * shaped like the documentation's example envelope (example_files/konvolutt/mvakonvolutt1.xml).
 */
export function konvolutt(opts: KonvoluttOptions = {}): string {
  const orgnr = opts.orgnr ?? DEMO_ORGNR;
  const [periodeType, periodeVerdi] = opts.periode === undefined ? ['skattleggingsperiodeToMaaneder', 'januar-februar'] : (opts.periode ?? ['', '']);
  const opprettetAv = opts.opprettetAv ?? 'idporten-bff demo';
  const periode = opts.periode === null ? '' : `  <skattleggingsperiode>
    <periode>
      <${periodeType}>${periodeVerdi}</${periodeType}>
    </periode>
    <aar>${opts.aar ?? '2025'}</aar>
  </skattleggingsperiode>
`;
  const vedlegg = [
    ...(opts.vedlegg ?? []).map((name) => ['binaerVedlegg', 'sluttbruker', name] as const),
    ['mva-melding', 'sluttbrukersystem', 'mvaMelding.xml'] as const,
  ].map(([type, kilde, name]) => {
    const dot = name.lastIndexOf('.');
    return `  <vedlegg>
    <vedleggstype>${type}</vedleggstype>
    <kildegruppe>${kilde}</kildegruppe>
    <opprettetAv>${opprettetAv}</opprettetAv>
    <vedleggsfil>
      <filnavn>${dot > 0 ? name.slice(0, dot) : name}</filnavn>
      <filekstensjon>${dot > 0 ? name.slice(dot + 1) : ''}</filekstensjon>
      <filinnhold>${name}</filinnhold>
    </vedleggsfil>
  </vedlegg>
`;
  }).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>
<mvaMeldingInnsending xmlns="no:skatteetaten:fastsetting:avgift:mva:mvameldinginnsending:v1.0">
  <norskIdentifikator>
    <organisasjonsnummer>${orgnr}</organisasjonsnummer>
  </norskIdentifikator>
${periode}  <meldingskategori>${opts.meldingskategori ?? 'alminnelig'}</meldingskategori>
  <innsendingstype>komplett</innsendingstype>
  <opprettetAv>${opprettetAv}</opprettetAv>
${vedlegg}</mvaMeldingInnsending>
`;
}
