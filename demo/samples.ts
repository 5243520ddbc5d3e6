/**
 * Two VAT returns (mva-melding, `mvaMeldingDto`) for the demo page and the tests: one that
 * the validation look-alike accepts and one that breaks its rules (no tax period, and a
 * total that does not match the lines).
 */

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
    <organisasjonsnummer>310000001</organisasjonsnummer>
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
    <organisasjonsnummer>310000001</organisasjonsnummer>
  </skattepliktig>
  <meldingskategori>alminnelig</meldingskategori>
</mvaMeldingDto>
`;
