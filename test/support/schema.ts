import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { expect } from 'vitest';
import { BIN } from './cli.js';

const schema = JSON.parse(fs.readFileSync(path.resolve(path.dirname(BIN), '../schema/report.schema.json'), 'utf8'));
const validate = new Ajv({ allErrors: true }).compile(schema);

/** The report validates against the JSON Schema that ships with the package. */
export function expectValidReport(report: unknown): void {
  const ok = validate(report);
  expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
  expect(ok).toBe(true);
}
