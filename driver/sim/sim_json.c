/* sim_json.c - a small, bounded JSON reader for flat objects, and an output buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sim_json.h"

typedef struct { const char *P, *End; JSON_OBJ *O; const char *Err; } PARSER;

static void Ws(PARSER *p)
{
    while (p->P < p->End && (*p->P == ' ' || *p->P == '\t' || *p->P == '\r' || *p->P == '\n')) p->P++;
}

static int Hex4(const char *s, unsigned *v)
{
    int i;
    *v = 0;
    for (i = 0; i < 4; i++) {
        char c = s[i];
        *v <<= 4;
        if (c >= '0' && c <= '9') *v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') *v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') *v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    return 0;
}

static int Put(PARSER *p, char **dst, size_t *len, unsigned cp)
{
    JSON_OBJ *o = p->O;
    char tmp[4];
    int n, i;
    if (cp < 0x80) { tmp[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { tmp[0] = (char)(0xC0 | (cp >> 6)); tmp[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) { tmp[0] = (char)(0xE0 | (cp >> 12)); tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); tmp[2] = (char)(0x80 | (cp & 0x3F)); n = 3; }
    else { tmp[0] = (char)(0xF0 | (cp >> 18)); tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F)); tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); tmp[3] = (char)(0x80 | (cp & 0x3F)); n = 4; }
    if (o->ArenaUsed + (size_t)n + 1 >= sizeof(o->Arena)) { p->Err = "string too long"; return -1; }
    for (i = 0; i < n; i++) o->Arena[o->ArenaUsed++] = tmp[i];
    (void)dst;
    *len += (size_t)n;
    return 0;
}

/* Parses a string at p->P (on the quote). If Out, stores it in the arena. */
static int String(PARSER *p, char **out, size_t *outLen)
{
    size_t len = 0;
    char *start = p->O->Arena + p->O->ArenaUsed;
    p->P++;
    while (p->P < p->End && *p->P != '"') {
        unsigned char c = (unsigned char)*p->P++;
        unsigned cp;
        if (c < 0x20) { p->Err = "control character in string"; return -1; }
        if (c != '\\') {
            if (out) {
                if (p->O->ArenaUsed + 2 >= sizeof(p->O->Arena)) { p->Err = "string too long"; return -1; }
                p->O->Arena[p->O->ArenaUsed++] = (char)c;
                len++;
            }
            continue;
        }
        if (p->P >= p->End) break;
        c = (unsigned char)*p->P++;
        switch (c) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = 8; break;
        case 'f': cp = 12; break;
        case 'n': cp = 10; break;
        case 'r': cp = 13; break;
        case 't': cp = 9; break;
        case 'u':
            if (p->End - p->P < 4 || Hex4(p->P, &cp) != 0) { p->Err = "bad \\u escape"; return -1; }
            p->P += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->End - p->P < 6 || p->P[0] != '\\' || p->P[1] != 'u' || Hex4(p->P + 2, &lo) != 0 ||
                    lo < 0xDC00 || lo > 0xDFFF) { p->Err = "unpaired surrogate"; return -1; }
                p->P += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) { p->Err = "unpaired surrogate"; return -1; }
            break;
        default: p->Err = "bad escape"; return -1;
        }
        if (out && Put(p, NULL, &len, cp) != 0) return -1;
    }
    if (p->P >= p->End) { p->Err = "unterminated string"; return -1; }
    p->P++;
    if (out) {
        p->O->Arena[p->O->ArenaUsed++] = 0;
        *out = start;
        *outLen = len;
    }
    return 0;
}

static int Value(PARSER *p, JSON_FIELD *f, int depth);

static int Skip(PARSER *p, int depth)
{
    JSON_FIELD dummy;
    return Value(p, &dummy, depth);
}

static int Number(PARSER *p, JSON_FIELD *f)
{
    char buf[64];
    size_t n = 0;
    char *end;
    int isInt = 1;
    while (p->P < p->End && n < sizeof(buf) - 1 && strchr("+-0123456789.eE", *p->P)) {
        if (*p->P == '.' || *p->P == 'e' || *p->P == 'E') isInt = 0;
        buf[n++] = *p->P++;
    }
    buf[n] = 0;
    if (n == 0) { p->Err = "unexpected character"; return -1; }
    f->Kind = JV_NUM;
    f->Num = strtod(buf, &end);
    if (*end) { p->Err = "bad number"; return -1; }
    f->IsInt = isInt;
    if (isInt) {
        f->Int = strtoll(buf, &end, 10);
    } else {
        f->Int = (int64_t)f->Num;
        f->IsInt = (double)f->Int == f->Num;
    }
    return 0;
}

static int Value(PARSER *p, JSON_FIELD *f, int depth)
{
    Ws(p);
    if (p->P >= p->End) { p->Err = "unexpected end"; return -1; }
    if (depth > 8) { p->Err = "nesting too deep"; return -1; }
    f->Raw = p->P;
    switch (*p->P) {
    case '"':
        f->Kind = JV_STR;
        if (String(p, &f->Str, &f->StrLen) != 0) return -1;
        break;
    case '{':
        f->Kind = JV_OBJECT;
        p->P++;
        Ws(p);
        if (p->P < p->End && *p->P == '}') { p->P++; break; }
        for (;;) {
            Ws(p);
            if (p->P >= p->End || *p->P != '"') { p->Err = "expected key"; return -1; }
            if (String(p, NULL, NULL) != 0) return -1;
            Ws(p);
            if (p->P >= p->End || *p->P != ':') { p->Err = "expected ':'"; return -1; }
            p->P++;
            if (Skip(p, depth + 1) != 0) return -1;
            Ws(p);
            if (p->P < p->End && *p->P == ',') { p->P++; continue; }
            if (p->P < p->End && *p->P == '}') { p->P++; break; }
            p->Err = "expected ',' or '}'";
            return -1;
        }
        break;
    case '[':
        f->Kind = JV_ARRAY;
        f->ArrayCount = 0;
        p->P++;
        Ws(p);
        if (p->P < p->End && *p->P == ']') { p->P++; break; }
        for (;;) {
            JSON_FIELD e;
            memset(&e, 0, sizeof(e));
            if (Value(p, &e, depth + 1) != 0) return -1;
            if (e.Kind == JV_NUM && e.IsInt && f->ArrayCount < JSON_MAX_ARRAY) {
                f->ArrayInt[f->ArrayCount++] = e.Int;
            } else if (e.Kind == JV_NUM || f->ArrayCount >= JSON_MAX_ARRAY) {
                p->Err = "array must hold at most 64 integers";
                return -1;
            }
            Ws(p);
            if (p->P < p->End && *p->P == ',') { p->P++; continue; }
            if (p->P < p->End && *p->P == ']') { p->P++; break; }
            p->Err = "expected ',' or ']'";
            return -1;
        }
        break;
    case 't':
        if (p->End - p->P >= 4 && !memcmp(p->P, "true", 4)) { f->Kind = JV_BOOL; f->Bool = 1; p->P += 4; break; }
        p->Err = "bad literal"; return -1;
    case 'f':
        if (p->End - p->P >= 5 && !memcmp(p->P, "false", 5)) { f->Kind = JV_BOOL; f->Bool = 0; p->P += 5; break; }
        p->Err = "bad literal"; return -1;
    case 'n':
        if (p->End - p->P >= 4 && !memcmp(p->P, "null", 4)) { f->Kind = JV_NULL; p->P += 4; break; }
        p->Err = "bad literal"; return -1;
    default:
        if (Number(p, f) != 0) return -1;
    }
    f->RawLen = (size_t)(p->P - f->Raw);
    return 0;
}

int JsonParse(const char *Text, size_t Len, JSON_OBJ *O, const char **Error)
{
    PARSER p;
    p.P = Text;
    p.End = Text + Len;
    p.O = O;
    p.Err = NULL;
    O->Count = 0;
    O->ArenaUsed = 0;
    Ws(&p);
    if (p.P >= p.End || *p.P != '{') { *Error = "expected a JSON object"; return -1; }
    p.P++;
    Ws(&p);
    if (p.P < p.End && *p.P == '}') { p.P++; goto tail; }
    for (;;) {
        JSON_FIELD *f;
        char *key;
        size_t keyLen;
        Ws(&p);
        if (p.P >= p.End || *p.P != '"') { *Error = "expected a key"; return -1; }
        if (String(&p, &key, &keyLen) != 0) { *Error = p.Err; return -1; }
        if (O->Count >= JSON_MAX_FIELDS) { *Error = "too many fields"; return -1; }
        f = &O->Fields[O->Count++];
        memset(f, 0, sizeof(*f));
        snprintf(f->Key, sizeof(f->Key), "%s", key);
        Ws(&p);
        if (p.P >= p.End || *p.P != ':') { *Error = "expected ':'"; return -1; }
        p.P++;
        if (Value(&p, f, 1) != 0) { *Error = p.Err; return -1; }
        Ws(&p);
        if (p.P < p.End && *p.P == ',') { p.P++; continue; }
        if (p.P < p.End && *p.P == '}') { p.P++; break; }
        *Error = "expected ',' or '}'";
        return -1;
    }
tail:
    Ws(&p);
    if (p.P != p.End) { *Error = "trailing characters"; return -1; }
    return 0;
}

const JSON_FIELD *JsonGet(const JSON_OBJ *O, const char *Key)
{
    int i;
    for (i = 0; i < O->Count; i++) if (strcmp(O->Fields[i].Key, Key) == 0) return &O->Fields[i];
    return NULL;
}

const char *JsonStr(const JSON_OBJ *O, const char *Key)
{
    const JSON_FIELD *f = JsonGet(O, Key);
    return (f && f->Kind == JV_STR) ? f->Str : NULL;
}

int JsonInt(const JSON_OBJ *O, const char *Key, int64_t *Out)
{
    const JSON_FIELD *f = JsonGet(O, Key);
    char *end;
    if (!f) return 0;
    if (f->Kind == JV_NUM && f->IsInt) { *Out = f->Int; return 1; }
    if (f->Kind == JV_STR && f->StrLen > 0 && f->StrLen < 24) {
        unsigned long long v = strtoull(f->Str, &end, 0);
        if (*end == 0) { *Out = (int64_t)v; return 1; }
    }
    return -1; /* present but not an integer */
}

int JsonBool(const JSON_OBJ *O, const char *Key, int Default)
{
    const JSON_FIELD *f = JsonGet(O, Key);
    return (f && f->Kind == JV_BOOL) ? f->Bool : Default;
}

void JbInit(JBUF *B) { B->P = NULL; B->Len = B->Cap = 0; }
void JbFree(JBUF *B) { free(B->P); JbInit(B); }

static void Grow(JBUF *B, size_t add)
{
    if (B->Len + add + 1 > B->Cap) {
        size_t cap = B->Cap ? B->Cap * 2 : 256;
        while (cap < B->Len + add + 1) cap *= 2;
        B->P = (char *)realloc(B->P, cap);
        if (!B->P) abort();
        B->Cap = cap;
    }
}

void JbRaw(JBUF *B, const char *S)
{
    size_t n = strlen(S);
    Grow(B, n);
    memcpy(B->P + B->Len, S, n);
    B->Len += n;
    B->P[B->Len] = 0;
}

void JbFmt(JBUF *B, const char *Fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, Fmt);
    n = vsnprintf(NULL, 0, Fmt, ap);
    va_end(ap);
    if (n < 0) return;
    Grow(B, (size_t)n);
    va_start(ap, Fmt);
    vsnprintf(B->P + B->Len, (size_t)n + 1, Fmt, ap);
    va_end(ap);
    B->Len += (size_t)n;
}

void JbStr(JBUF *B, const char *S)
{
    const unsigned char *p = (const unsigned char *)S;
    JbRaw(B, "\"");
    for (; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') { esc[0] = '\\'; esc[1] = (char)*p; esc[2] = 0; JbRaw(B, esc); }
        else if (*p < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *p); JbRaw(B, esc); }
        else { esc[0] = (char)*p; esc[1] = 0; JbRaw(B, esc); }
    }
    JbRaw(B, "\"");
}
