/**
 * 8.3 short names. NTFS may give a file a second, short name (`PROGRA~1` for `Program Files`);
 * which long name a short one stands for depends on the directory's contents, so it cannot be
 * known here. `couldBeShortNameOf` over-approximates: true when the long name could have been given
 * this short name. Windows derives the short base from the long name's base (spaces and extra dots
 * removed, upper-cased, characters outside the OEM set replaced by `_`), keeps up to six characters
 * before `~N`, or two characters plus a four-digit hash when many names collide.
 */
export function couldBeShortNameOf(shortUpper: string, longUpper: string): boolean {
  const tilde = shortUpper.indexOf("~");
  if (tilde <= 0) return false;
  const prefix = shortUpper.slice(0, tilde);
  let base = longUpper.replace(/ /g, "");
  const dot = base.lastIndexOf(".");
  if (dot > 0) base = base.slice(0, dot);
  base = base.replace(/\./g, "");
  if (matchesPrefix(prefix, base)) return true;
  // Hash form: two characters of the name, four hex digits.
  return /^..[0-9A-F]{4}$/.test(prefix) && matchesPrefix(prefix.slice(0, 2), base);
}

function matchesPrefix(prefix: string, base: string): boolean {
  if (base.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    const p = prefix[i];
    if (p === "_") continue; // stands for any character not in the OEM code page, or one of +,;=[]
    const b = base[i]!;
    if (p !== b && !(b.charCodeAt(0) > 0x7f)) return false;
  }
  return true;
}
