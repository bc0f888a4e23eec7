// Usage: node validate.mjs <asyncapi document>
// Prints each diagnostic as a JSON line; exits 1 when the official parser reports an error or produces no document.
import { Parser } from '@asyncapi/parser';
import { readFileSync } from 'node:fs';

const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(process.argv[2], 'utf8'));
const errors = diagnostics.filter(d => d.severity === 0);
for (const d of diagnostics) console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
console.log(JSON.stringify({ valid: !!document && errors.length === 0, version: document?.version(), channels: document?.channels().length, operations: document?.operations().length, messages: document?.messages().length }));
process.exit(document && errors.length === 0 ? 0 : 1);
