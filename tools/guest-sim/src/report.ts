import { summarizeTrace, type BootReport } from './boot.js';

/** A readable account of a boot: calls by command and status, what was created, Secure Boot state. */
export function formatBootReport(report: BootReport): string {
  const lines: string[] = [];
  const summary = summarizeTrace(report.trace);
  lines.push(`${report.trace.length} calls:`);
  for (const [command, byStatus] of Object.entries(summary)) {
    const parts = Object.entries(byStatus).map(([status, n]) => `${n} ${status}`);
    lines.push(`  ${command.padEnd(20)} ${parts.join(', ')}`);
  }
  lines.push(`variables created: ${report.created.length === 0 ? 'none' : report.created.join(', ')}`);
  lines.push(`boot order: ${report.bootOrder.join(', ')}`);
  lines.push(`monotonic counter (MTC): ${report.monotonicCounter}`);
  const sb = report.secureBoot === undefined ? 'absent' : String(report.secureBoot);
  const setup = report.setupMode === undefined ? 'absent' : String(report.setupMode);
  lines.push(
    `Secure Boot as the OS sees it: SecureBoot=${sb}, SetupMode=${setup}${report.setupMode === 1 ? ' (no PK enrolled)' : ''}`,
  );
  const s = report.storage;
  if (s.maximum !== undefined && s.remaining !== undefined) {
    lines.push(
      `storage: ${s.maximum - s.remaining} of ${s.maximum} bytes used, largest variable ${s.maximumVariable ?? '?'} bytes`,
    );
  }
  return `${lines.join('\n')}\n`;
}
