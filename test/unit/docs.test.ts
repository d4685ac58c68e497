import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { generatedSections, sectionOf } from "../../scripts/docs.ts";
import { metricTableMarkdown } from "../../shared/domain/metric-catalogue.ts";
import { problemCatalogue, problemTableMarkdown } from "../../shared/domain/problems.ts";

const cells = (table: string) =>
  table
    .split("\n")
    .filter((line) => line.startsWith("|") && !/^\|[\s-|]+\|$/.test(line))
    .map((line) =>
      line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim()),
    );

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith(".ts") ? [path] : [];
  });
}

describe("the problem catalogue", () => {
  it("is what the API reference lists (npm run docs writes it)", () => {
    const { file } = generatedSections.problems;
    expect(cells(sectionOf(readFileSync(file, "utf8"), "problems"))).toEqual(cells(problemTableMarkdown()));
  });

  it("is the only place a problem slug is written in the code (code names problems by key)", () => {
    const files = ["shared", "functions", "local", "infra", "scripts"].flatMap(sourceFiles);
    const offenders: string[] = [];
    for (const file of files) {
      if (file === join("shared", "domain", "problems.ts")) continue;
      const text = readFileSync(file, "utf8");
      for (const { slug } of Object.values(problemCatalogue))
        if (new RegExp(`["'\`/]${slug}["'\`]`).test(text)) offenders.push(`${file}: ${slug}`);
    }
    expect(offenders).toEqual([]);
  });
});

describe("the metric catalogue", () => {
  it("is what the API reference lists (npm run docs writes it)", () => {
    const { file } = generatedSections.metrics;
    expect(cells(sectionOf(readFileSync(file, "utf8"), "metrics"))).toEqual(cells(metricTableMarkdown()));
  });
});

describe("the docs", () => {
  it("link only to files that exist", () => {
    const pages = ["README.md", ...readdirSync("docs").map((f) => join("docs", f))];
    const broken: string[] = [];
    for (const page of pages) {
      for (const [, target] of readFileSync(page, "utf8").matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(target as string)) continue;
        const path = join(page === "README.md" ? "." : "docs", target as string);
        try {
          statSync(path);
        } catch {
          broken.push(`${page}: ${target}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });
});
