/** What commands print: the API's JSON with --json (one document on stdout), tables otherwise. */
import Table from "cli-table3";

export type Cell = string | number | boolean | undefined | null;

export function printJson(doc: unknown): void {
  process.stdout.write(`${JSON.stringify(doc ?? null, null, 2)}\n`);
}

/** Plain columns, no rules (as kubectl or docker print them): easy to read and to grep. */
const compact = {
  top: "",
  "top-mid": "",
  "top-left": "",
  "top-right": "",
  bottom: "",
  "bottom-mid": "",
  "bottom-left": "",
  "bottom-right": "",
  left: "",
  "left-mid": "",
  mid: "",
  "mid-mid": "",
  right: "",
  "right-mid": "",
  middle: "  ",
};
const style = { head: [], border: [], "padding-left": 0, "padding-right": 0 };

function cell(value: Cell): string {
  return value === undefined || value === null || value === "" ? "-" : String(value);
}

/** Rows under a header; "(none)" for an empty list. */
export function printTable(head: string[], rows: Cell[][]): void {
  if (rows.length === 0) {
    process.stdout.write("(none)\n");
    return;
  }
  const table = new Table({ head: head.map((h) => h.toUpperCase()), chars: compact, style });
  for (const row of rows) table.push(row.map(cell));
  process.stdout.write(`${trimLines(table.toString())}\n`);
}

/** One object, one field per line. */
export function printFields(fields: [string, Cell][]): void {
  const table = new Table({ chars: compact, style });
  for (const [name, value] of fields) table.push([`${name}:`, cell(value)]);
  process.stdout.write(`${trimLines(table.toString())}\n`);
}

function trimLines(text: string): string {
  return text
    .split("\n")
    .map((line) => line.trimEnd())
    .join("\n");
}

export function printLine(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** `AVAILABLE 3, PROVISIONING 1`: only the states that have desktops. */
export function counts(byState: Record<string, number> | undefined): string {
  const parts = Object.entries(byState ?? {}).filter(([, n]) => n > 0);
  return parts.length ? parts.map(([state, n]) => `${state} ${n}`).join(", ") : "none";
}
