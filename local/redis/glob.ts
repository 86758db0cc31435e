const cache = new Map<string, RegExp>();

/** Redis glob-style matching (KEYS, SCAN MATCH): `*`, `?`, `[abc]`, `[^a-z]`, `\x`. */
export function globMatch(pattern: string, subject: string): boolean {
  if (pattern === "*") return true;
  let re = cache.get(pattern);
  if (!re) {
    re = globToRegExp(pattern);
    if (cache.size > 500) cache.clear();
    cache.set(pattern, re);
  }
  return re.test(subject);
}

function escapeRe(ch: string): string {
  return ch.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}

function globToRegExp(pattern: string): RegExp {
  let out = "";
  let i = 0;
  while (i < pattern.length) {
    const ch = pattern[i]!;
    if (ch === "*") {
      out += "[\\s\\S]*";
    } else if (ch === "?") {
      out += "[\\s\\S]";
    } else if (ch === "\\" && i + 1 < pattern.length) {
      i++;
      out += escapeRe(pattern[i]!);
    } else if (ch === "[") {
      const close = findClass(pattern, i + 1);
      if (close < 0) {
        out += "\\[";
      } else {
        out += classToRegExp(pattern.slice(i + 1, close));
        i = close;
      }
    } else {
      out += escapeRe(ch);
    }
    i++;
  }
  return new RegExp(`^${out}$`);
}

function findClass(pattern: string, from: number): number {
  let i = from;
  if (pattern[i] === "^") i++;
  while (i < pattern.length) {
    if (pattern[i] === "\\") i += 2;
    else if (pattern[i] === "]") return i;
    else i++;
  }
  return -1;
}

function classToRegExp(body: string): string {
  let negate = false;
  let i = 0;
  if (body[0] === "^") {
    negate = true;
    i = 1;
  }
  let out = "";
  while (i < body.length) {
    let ch = body[i]!;
    if (ch === "\\" && i + 1 < body.length) {
      i++;
      ch = body[i]!;
    }
    if (body[i + 1] === "-" && i + 2 < body.length) {
      let end = body[i + 2]!;
      let skip = 3;
      if (end === "\\" && i + 3 < body.length) {
        end = body[i + 3]!;
        skip = 4;
      }
      // Redis accepts reversed ranges ([z-a]) as the same set.
      const [lo, hi] = ch <= end ? [ch, end] : [end, ch];
      out += `${escapeRe(lo)}-${escapeRe(hi)}`;
      i += skip;
    } else {
      out += escapeRe(ch);
      i++;
    }
  }
  if (out === "") return negate ? "[\\s\\S]" : "(?!)";
  return negate ? `[^${out}]` : `[${out}]`;
}
