import { type FunnelAnswer, type KpiAnswer, type Kpis } from '../../contract/kpis.js';
/**
 * CSV forms of the query answers (`?format=csv`), for spreadsheets: one row
 * per point (KPIs) or per step (funnels), numbers as they are, empty cells
 * where a value is undefined (no data).
 */

const cell = (v: string | number | null | undefined): string => {
  if (v === null || v === undefined) return '';
  const text = String(v);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};
const row = (values: (string | number | null | undefined)[]) => values.map(cell).join(',');
const iso = (ms: number) => new Date(ms).toISOString();

const KPI_COLUMNS: [string, (k: Kpis) => number | null][] = [
  ['dialogs', (k) => k.dialogs],
  ['dialogs_estimate', (k) => k.dialogsEstimate],
  ['assertions', (k) => k.assertions],
  ['new_users', (k) => k.newUsers],
  ['new_users_estimate', (k) => k.newUsersEstimate],
  ['sites_median', (k) => k.sitesLoggedIn.median],
  ['sites_mean', (k) => k.sitesLoggedIn.mean],
  ['sites_p90', (k) => k.sitesLoggedIn.p90],
  ['bounce_rate', (k) => k.bounceRate],
  ['new_user_bounce', (k) => k.newUserBounce],
  ['error_screen_rate', (k) => k.errorScreenRate],
  ['password_reset_success', (k) => k.passwordResetSuccess],
  ['additional_email_share', (k) => k.additionalEmailShare],
  ['time_to_login_median_ms', (k) => k.timeToLoginMs.median],
  ['time_to_login_p90_ms', (k) => k.timeToLoginMs.p90],
  ...[0, 1, 2, 3].map((i): [string, (k: Kpis) => number | null] => [`new_user_step${i + 1}`, (k) => k.newUserFunnel[i]!.count]),
  ...[0, 1, 2].map((i): [string, (k: Kpis) => number | null] => [`password_reset_step${i + 1}`, (k) => k.passwordResetFunnel[i]!.count]),
  ...(['bounce', 'fallback', 'idp', 'assertion', 'fail'] as const).map((o): [string, (k: Kpis) => number | null] => [`outcome_${o}`, (k) => k.outcomes[o]]),
];

export function kpisCsv(answer: KpiAnswer): string {
  const lines = [row(['segment', 'start', 'end', ...KPI_COLUMNS.map(([name]) => name)])];
  for (const series of answer.series) {
    for (const point of series.points) lines.push(row([series.segment, iso(point.start), iso(point.end), ...KPI_COLUMNS.map(([, get]) => get(point.kpis))]));
  }
  return lines.join('\n') + '\n';
}

export function funnelCsv(answer: FunnelAnswer): string {
  const lines = [row(['segment', 'step', 'name', 'count', 'estimate', 'conversion_from_start', 'conversion_from_previous', 'drop_off'])];
  for (const series of answer.series) {
    for (const s of series.steps)
      lines.push(row([series.segment, s.step, s.name, s.count, s.estimate, s.conversionFromStart, s.conversionFromPrevious, s.dropOff]));
  }
  return lines.join('\n') + '\n';
}
