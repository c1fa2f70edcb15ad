/* sim_json.h - just enough JSON for the control protocol and traces: one flat object per line
 * (string, number, bool, null and arrays of scalars; nested objects are skipped). */
#ifndef AGENTSH_SIM_JSON_H
#define AGENTSH_SIM_JSON_H
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_FIELDS 32
#define JSON_MAX_ARRAY 64

typedef enum { JV_NULL, JV_BOOL, JV_NUM, JV_STR, JV_ARRAY, JV_OBJECT } JSON_KIND;

typedef struct JSON_FIELD {
    char Key[48];
    JSON_KIND Kind;
    int Bool;
    double Num;
    int IsInt;
    int64_t Int;
    char *Str;                  /* decoded UTF-8 (owned by the JSON_OBJ arena) */
    size_t StrLen;
    int ArrayCount;
    int64_t ArrayInt[JSON_MAX_ARRAY];
    const char *Raw;            /* the value's text in the input (for echoing "id") */
    size_t RawLen;
} JSON_FIELD;

typedef struct JSON_OBJ {
    int Count;
    JSON_FIELD Fields[JSON_MAX_FIELDS];
    char Arena[65536];
    size_t ArenaUsed;
} JSON_OBJ;

/* 0 on success; else -1 and Error set. */
int JsonParse(const char *Text, size_t Len, JSON_OBJ *Out, const char **Error);
const JSON_FIELD *JsonGet(const JSON_OBJ *O, const char *Key);
const char *JsonStr(const JSON_OBJ *O, const char *Key);             /* NULL if absent or not a string */
int JsonInt(const JSON_OBJ *O, const char *Key, int64_t *Out);        /* number (integral) or decimal string */
int JsonBool(const JSON_OBJ *O, const char *Key, int Default);

/* Output buffer with JSON string escaping. */
typedef struct JBUF { char *P; size_t Len, Cap; } JBUF;
void JbInit(JBUF *B);
void JbFree(JBUF *B);
void JbRaw(JBUF *B, const char *S);
void JbFmt(JBUF *B, const char *Fmt, ...) __attribute__((format(printf, 2, 3)));
void JbStr(JBUF *B, const char *S);   /* quoted, escaped */
#endif
