// A strict RFC 4180 parser for tests: CRLF record breaks, quoted fields with doubled quotes,
// and it throws on anything a lenient parser would guess about (stray quotes, ragged rows).

/** Parses CSV text into rows of fields; throws on malformed input. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    let field = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= n) throw new Error('unterminated quoted field');
        const c = text[i]!;
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += c;
        i++;
      }
      if (i < n && text[i] !== ',' && text.slice(i, i + 2) !== '\r\n') {
        throw new Error(`junk after a quoted field at ${i}`);
      }
    } else {
      while (i < n && text[i] !== ',' && text[i] !== '\r') {
        if (text[i] === '"' || text[i] === '\n') throw new Error(`bare quote or LF at ${i}`);
        field += text[i]!;
        i++;
      }
      if (text[i] === '\r' && text[i + 1] !== '\n') throw new Error(`bare CR at ${i}`);
    }
    row.push(field);
    if (text[i] === ',') {
      i++;
      if (i === n) row.push('');
    } else if (text.slice(i, i + 2) === '\r\n') {
      rows.push(row);
      row = [];
      i += 2;
    }
  }
  if (row.length) rows.push(row);
  const width = rows[0]?.length ?? 0;
  rows.forEach((r, k) => {
    if (r.length !== width) throw new Error(`row ${k} has ${r.length} fields, header has ${width}`);
  });
  return rows;
}
