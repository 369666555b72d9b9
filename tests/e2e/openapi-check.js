#!/usr/bin/env node
// openapi-check.js - checks of toegw's OpenAPI document (api/openapi.json).
//
//   node openapi-check.js lint DOC
//       DOC is a valid OpenAPI 3.1 document (swagger-parser: the 3.1 schema, every $ref
//       resolves, operationIds unique) and every schema in it compiles as JSON Schema
//       2020-12 under ajv's strict mode.
//
//   node openapi-check.js responses DOC LOG
//       Every answer recorded in LOG is one the document describes. LOG has a line per
//       request: METHOD, TARGET (path and query as sent), STATUS, BODY FILE, HEADER FILE,
//       separated by tabs. For a documented operation, its status must be documented, the
//       Content-Type one of the response's media types, a JSON body valid against the
//       schema, the required headers present and valid; HEAD and bodyless responses must
//       have empty bodies. A path the document does not have must be answered 400, 401 or
//       404, a method it does not have 401 or 405, either as a valid problem+json.
//       STATUS 000 (no answer: curl gave up) is counted, not checked.
//
// Exits 0 when everything passed, 1 with one line per failure otherwise.
'use strict';

const fs = require('fs');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');
const SwaggerParser = require('@apidevtools/swagger-parser');

const ID = 'urn:toegw:openapi';
const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options', 'trace'];

function readDoc(file) {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
}

// A copy of x with every "#/components/schemas/X" made "ID#/$defs/X".
function rewriteRefs(x) {
    if (Array.isArray(x))
        return x.map(rewriteRefs);
    if (x && typeof x === 'object') {
        const out = {};
        for (const [k, v] of Object.entries(x)) {
            if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/'))
                out[k] = `${ID}#/$defs/${v.slice('#/components/schemas/'.length)}`;
            else
                out[k] = rewriteRefs(v);
        }
        return out;
    }
    return x;
}

function newAjv(doc) {
    const ajv = new Ajv2020({ strict: true, strictTypes: false, allErrors: true });
    addFormats(ajv);
    ajv.addSchema({ $id: ID, $defs: rewriteRefs((doc.components || {}).schemas || {}) });
    return ajv;
}

// Resolve a local $ref ("#/components/responses/X") against the document.
function deref(doc, v) {
    let seen = 0;
    while (v && typeof v.$ref === 'string') {
        if (!v.$ref.startsWith('#/') || ++seen > 8)
            throw new Error(`cannot follow $ref ${v.$ref}`);
        v = v.$ref.slice(2).split('/').reduce((o, k) => (o ? o[k.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined), doc);
    }
    return v;
}

// ---------------------------------------------------------------- lint

async function lint(file) {
    const doc = readDoc(file);
    const failures = [];

    try {
        await SwaggerParser.validate(JSON.parse(JSON.stringify(doc)));
    } catch (e) {
        failures.push(`not a valid OpenAPI document: ${String(e.message || e).replace(/\s+/g, ' ')}`);
    }
    if (doc.openapi !== '3.1.0')
        failures.push(`openapi is ${doc.openapi}, not 3.1.0`);
    let ajv;
    try {
        ajv = newAjv(doc);
        ajv.getSchema(ID);
    } catch (e) {
        failures.push(`components/schemas do not compile: ${e.message}`);
    }
    let n = 0;
    const compile = (where, schema) => {
        n++;
        try {
            ajv.compile(rewriteRefs(schema));
        } catch (e) {
            failures.push(`${where}: the schema does not compile: ${e.message}`);
        }
    };
    if (ajv) {
        for (const name of Object.keys(doc.components.schemas || {}))
            compile(`#/components/schemas/${name}`, { $ref: `#/components/schemas/${name}` });
        for (const [path, item] of Object.entries(doc.paths || {})) {
            for (const m of METHODS) {
                const op = item[m];
                if (!op)
                    continue;
                const params = [...(item.parameters || []), ...(op.parameters || [])];
                for (const p of params.map((x) => deref(doc, x)))
                    compile(`${m} ${path} parameter ${p.name}`, p.schema);
                const rb = deref(doc, op.requestBody);
                for (const [type, media] of Object.entries((rb && rb.content) || {}))
                    compile(`${m} ${path} request ${type}`, media.schema || {});
                for (const [status, r] of Object.entries(op.responses || {}))
                    for (const [type, media] of Object.entries(deref(doc, r).content || {}))
                        compile(`${m} ${path} ${status} ${type}`, media.schema || {});
            }
        }
    }
    for (const f of failures)
        console.log(`FAIL ${f}`);
    console.log(`openapi-check lint ${file}: ${n} schemas compiled, ${failures.length} failures`);
    return failures.length === 0;
}

// ---------------------------------------------------------------- responses

// The document's paths as [regexp, template], literal ones before templated ones.
function pathMatchers(doc) {
    const out = Object.keys(doc.paths).map((t) => {
        const re = t.split(/(\{[^}]+\})/).map((part) => (part.startsWith('{')
            ? '([^/]+)' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('');
        return [new RegExp(`^${re}$`), t, (t.match(/\{/g) || []).length];
    });
    return out.sort((a, b) => a[2] - b[2]);
}

// The last response's headers in a curl -D file: name (lowercase) -> value.
function readHeaders(file) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'latin1') : '';
    const blocks = text.split(/\r?\n\r?\n/).filter((b) => /^HTTP\//.test(b));
    const last = blocks.length ? blocks[blocks.length - 1] : '';
    const h = {};
    for (const line of last.split(/\r?\n/).slice(1)) {
        const i = line.indexOf(':');
        if (i > 0)
            h[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    return h;
}

function mediaType(ctype) {
    return (ctype || '').split(';')[0].trim().toLowerCase();
}

function mediaMatches(pattern, type) {
    if (pattern === '*/*')
        return true;
    if (pattern.endsWith('/*'))
        return type.startsWith(pattern.slice(0, -1));
    return pattern === type;
}

function isJson(type) {
    return type === 'application/json' || type.endsWith('+json');
}

class Checker {
    constructor(doc) {
        this.doc = doc;
        this.ajv = newAjv(doc);
        this.cache = new Map();
        this.matchers = pathMatchers(doc);
        this.problem = this.validator('problem', { $ref: '#/components/schemas/Problem' });
    }

    validator(key, schema) {
        if (!this.cache.has(key))
            this.cache.set(key, this.ajv.compile(rewriteRefs(schema)));
        return this.cache.get(key);
    }

    errors(v) {
        return (v.errors || []).slice(0, 4).map((e) => {
            const p = e.params || {};
            const what = p.additionalProperty || p.missingProperty || p.allowedValue || p.allowedValues;
            return `${e.instancePath || '/'} ${e.message}${what !== undefined ? ` (${JSON.stringify(what)})` : ''}`;
        }).join('; ').slice(0, 600);
    }

    // A body that must be a problem+json; null when it is one, else why not.
    problemWhy(type, body) {
        if (type !== 'application/problem+json')
            return `Content-Type ${type || 'missing'}, not application/problem+json`;
        let j;
        try {
            j = JSON.parse(body);
        } catch (e) {
            return 'the body is not JSON';
        }
        return this.problem(j) ? null : this.errors(this.problem);
    }

    // One recorded answer: null when it is as documented, else why not.
    check(method, target, status, bodyFile, hdrFile) {
        const path = target.split('?')[0];
        const m = method.toLowerCase();
        const headers = readHeaders(hdrFile);
        const body = fs.existsSync(bodyFile) ? fs.readFileSync(bodyFile) : Buffer.alloc(0);
        const type = mediaType(headers['content-type']);
        const code = Number(status);
        const match = this.matchers.find(([re]) => re.test(path));

        if (!match) {
            if (![400, 401, 404].includes(code))
                return `a path the document does not have, answered ${status} (not 400, 401 or 404)`;
            return this.problemWhy(type, body.toString('utf8'));
        }
        const template = match[1];
        const item = this.doc.paths[template];
        const op = item[m];
        if (!op) {
            if (![401, 405].includes(code))
                return `${method} is not an operation of ${template}, answered ${status} (not 401 or 405)`;
            return m === 'head' ? null : this.problemWhy(type, body.toString('utf8'));
        }
        const rref = op.responses[status];
        if (!rref)
            return `status ${status} is not documented for ${m} ${template} (documented: ${Object.keys(op.responses).join(' ')})`;
        const resp = deref(this.doc, rref);
        for (const [name, href] of Object.entries(resp.headers || {})) {
            const h = deref(this.doc, href);
            const value = headers[name.toLowerCase()];
            if (value === undefined) {
                if (h.required)
                    return `header ${name} missing`;
                continue;
            }
            const v = this.validator(`header ${name} ${JSON.stringify(h.schema)}`, h.schema || {});
            const typed = h.schema && h.schema.type === 'integer' && /^[0-9]+$/.test(value) ? Number(value) : value;
            if (!v(typed))
                return `header ${name}: ${JSON.stringify(value)}: ${this.errors(v)}`;
        }
        if (m === 'head' || !resp.content) {
            if (body.length)
                return `${m === 'head' ? 'an answer to HEAD' : `status ${status}`} has a body of ${body.length} bytes`;
            return null;
        }
        const media = Object.keys(resp.content).find((p) => mediaMatches(p, type));
        if (!media)
            return `Content-Type ${type || 'missing'} is not one of ${Object.keys(resp.content).join(', ')}`;
        const schema = resp.content[media].schema;
        if (!schema)
            return null;
        if (!isJson(type)) {
            if (typeof schema.maxLength === 'number' && body.length > schema.maxLength)
                return `a body of ${body.length} bytes, at most ${schema.maxLength} documented`;
            return null;
        }
        let j;
        try {
            j = JSON.parse(body.toString('utf8'));
        } catch (e) {
            return `the ${type} body is not JSON`;
        }
        const v = this.validator(`${template} ${m} ${status} ${media}`, schema);
        return v(j) ? null : this.errors(v);
    }
}

function responses(docFile, logFile) {
    const checker = new Checker(readDoc(docFile));
    const lines = fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l.length);
    let ok = 0, noAnswer = 0, failed = 0;

    for (const line of lines) {
        const [method, target, status, bodyFile, hdrFile] = line.split('\t');
        if (!/^[1-5][0-9][0-9]$/.test(status)) {
            noAnswer++;
            continue;
        }
        let why;
        try {
            why = checker.check(method, target, status, bodyFile, hdrFile);
        } catch (e) {
            why = `cannot check: ${e.message}`;
        }
        if (why) {
            failed++;
            console.log(`FAIL ${method} ${target} ${status} (${bodyFile}): ${why}`);
        } else {
            ok++;
        }
    }
    console.log(`openapi-check responses ${logFile}: ${lines.length} answers, ${ok} as documented, ` +
                `${failed} not, ${noAnswer} without an answer`);
    return failed === 0 && ok > 0;
}

async function main() {
    const [cmd, ...args] = process.argv.slice(2);
    let good;
    if (cmd === 'lint' && args.length === 1)
        good = await lint(args[0]);
    else if (cmd === 'responses' && args.length === 2)
        good = responses(args[0], args[1]);
    else {
        console.error('usage: openapi-check.js lint DOC | responses DOC LOG');
        process.exit(2);
    }
    process.exit(good ? 0 : 1);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
