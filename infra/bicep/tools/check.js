#!/usr/bin/env node
// Syntax check of Bicep files with tree-sitter-bicep (no Bicep compiler is available offline): parses every
// file given (or every .bicep/.bicepparam under the directories given) and reports each ERROR or MISSING node
// as FILE:LINE:COLUMN. Exit status 1 when any file has one, 2 on a usage error.
//
// tree-sitter-bicep 1.1.0 predates two current forms, which are rewritten before parsing, on the same line and
// column so positions stay right (the rest of the file is checked as written):
//   - .bicepparam assignments `param NAME = EXPR` (no type): `param` becomes `var  `, whose grammar has the same
//     expression after `=`;
//   - `extension NAME` (Bicep extensions, such as microsoftGraphV1 in entra.bicep): becomes the older
//     `import 'NAME'` the grammar knows (the name is quoted in place).
// Type and schema errors (unknown properties, wrong API versions) are NOT found: only the compiler finds those.
'use strict';

const fs = require('fs');
const path = require('path');
const Parser = require('tree-sitter');
const Bicep = require('tree-sitter-bicep');

function collect(arg, out) {
  const st = fs.statSync(arg);
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(arg).sort()) {
      if (name === 'node_modules' || name === 'testdata' || name.startsWith('.')) continue;
      collect(path.join(arg, name), out);
    }
  } else if (/\.bicep(param)?$/.test(arg)) {
    out.push(arg);
  }
  return out;
}

// rewrite returns the source with the forms above replaced, line and column preserving.
function rewrite(src, isParam) {
  return src.split('\n').map((line) => {
    let m;
    if (isParam && (m = /^(\s*)param(\s+[A-Za-z_][A-Za-z0-9_]*\s*=)/.exec(line))) {
      return m[1] + 'var  ' + m[2] + line.slice(m[0].length);
    }
    if ((m = /^(\s*)extension(\s+)([A-Za-z_][A-Za-z0-9_]*)(\s*)$/.exec(line))) {
      // "extension X" -> "import    'X'"; same start column for the name's quote.
      return m[1] + 'import   ' + m[2] + "'" + m[3] + "'" + m[4];
    }
    return line;
  }).join('\n');
}

function check(file, parser) {
  const src = fs.readFileSync(file, 'utf8');
  const tree = parser.parse(rewrite(src, file.endsWith('.bicepparam')));
  const problems = [];
  (function walk(node) {
    if (node.type === 'ERROR' || node.isMissing) {
      const what = node.isMissing ? `missing ${node.type}` : 'syntax error';
      const text = src.split('\n')[node.startPosition.row] || '';
      problems.push(`${file}:${node.startPosition.row + 1}:${node.startPosition.column + 1}: ${what}: ${text.trim().slice(0, 100)}`);
      if (!node.isMissing) return; // one report per ERROR subtree
    }
    for (const child of node.children) walk(child);
  })(tree.rootNode);
  return problems;
}

function main(argv) {
  if (argv.length === 0) {
    console.error('usage: check.js FILE_OR_DIR...');
    return 2;
  }
  const files = [];
  for (const a of argv) collect(a, files);
  if (files.length === 0) {
    console.error('no .bicep or .bicepparam files under ' + argv.join(' '));
    return 2;
  }
  const parser = new Parser();
  parser.setLanguage(Bicep);
  let bad = 0;
  for (const f of files) {
    const problems = check(f, parser);
    if (problems.length) {
      bad++;
      for (const p of problems) console.log(p);
    } else {
      console.log(`${f}: ok`);
    }
  }
  console.log(`${files.length} files, ${bad} with syntax errors`);
  return bad ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
