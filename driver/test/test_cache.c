/* test_cache.c - LRU order, TTL, capacity, case folding, invalidation scopes, generation. */
#include "test.h"

/* Keys hold a pointer to their own inline buffer: never copy one by value. */
#define MakeKey(k, Session, Kind, Op, Path, Dest) MakeKeyAt(&(k), Session, Kind, Op, Path, Dest)
static void MakeKeyAt(AGENTSH_CACHE_KEY *k, uint64_t Session, uint32_t Kind, uint32_t Op, const char *Path,
                      const char *Dest)
{
    AGENTSH_USTR p = U(Path), d = U(Dest ? Dest : ""), none = AGENTSH_USTR_EMPTY;
    if (AgentshCacheKeyInit(k, Session, Kind, Op, &p, &d, &none) != STATUS_SUCCESS) {
        abort();
    }
}

static void Put(AGENTSH_CACHE *C, uint64_t S, const char *Path, uint32_t Dec, uint32_t Ttl, uint64_t Now)
{
    AGENTSH_CACHE_KEY k; MakeKey(k, S, AGENTSH_KIND_FILE, FILE_OP_WRITE, Path, NULL);
    AgentshCacheInsert(C, &k, Dec, Ttl, Now, AgentshCacheGeneration(C));
    AgentshCacheKeyFree(&k);
}

static int Has(AGENTSH_CACHE *C, uint64_t S, const char *Path, uint64_t Now, uint32_t *Dec)
{
    uint32_t d;
    AGENTSH_CACHE_KEY k; MakeKey(k, S, AGENTSH_KIND_FILE, FILE_OP_WRITE, Path, NULL);
    int hit = AgentshCacheLookup(C, &k, Now, &d);
    AgentshCacheKeyFree(&k);
    if (Dec) *Dec = d;
    return hit;
}

static int LruIs(AGENTSH_CACHE *C, uint32_t Index, const char *Path)
{
    uint16_t buf[256];
    uint32_t n, i;
    AGENTSH_USTR want = U(Path);
    if (!AgentshCacheDebugLruAt(C, Index, buf, 256, &n) || n != want.Length) return 0;
    for (i = 0; i < n; i++) if (buf[i] != AgentshUpcase(want.Buffer[i])) return 0;
    return 1;
}

static void test_cache_lru_order(void)
{
    AGENTSH_CACHE c;
    char p[64];
    int i;
    CHECK(AgentshCacheInit(&c, 100) == STATUS_SUCCESS);
    for (i = 0; i < 100; i++) { snprintf(p, sizeof p, "\\f%d", i); Put(&c, 1, p, DECISION_ALLOW, 10000, 1); }
    CHECK(LruIs(&c, 0, "\\f99"));
    CHECK(LruIs(&c, 99, "\\f0"));
    CHECK(Has(&c, 1, "\\f0", 2, NULL));          /* hit moves f0 to the front */
    CHECK(LruIs(&c, 0, "\\f0"));
    CHECK(LruIs(&c, 99, "\\f1"));
    Put(&c, 1, "\\new", DECISION_DENY, 10000, 3); /* evicts the LRU: f1 */
    CHECK_EQ(AgentshCacheCount(&c), 100);
    CHECK(!Has(&c, 1, "\\f1", 4, NULL));
    CHECK(Has(&c, 1, "\\f0", 4, NULL));
    CHECK(Has(&c, 1, "\\f2", 4, NULL));
    CHECK_EQ(c.Evictions, 1);
    /* replacing an existing key keeps one entry and moves it to the front */
    Put(&c, 1, "\\f50", DECISION_DENY, 10000, 5);
    CHECK_EQ(AgentshCacheCount(&c), 100);
    CHECK(LruIs(&c, 0, "\\f50"));
    { uint32_t d; CHECK(Has(&c, 1, "\\f50", 6, &d)); CHECK_EQ(d, DECISION_DENY); }
    AgentshCacheDestroy(&c);
}

static void test_cache_ttl_expiry(void)
{
    AGENTSH_CACHE c;
    CHECK(AgentshCacheInit(&c, 100) == STATUS_SUCCESS);
    Put(&c, 1, "\\a", DECISION_ALLOW, 1000, 5000);
    Put(&c, 1, "\\b", DECISION_ALLOW, 3000, 5000);
    CHECK(Has(&c, 1, "\\a", 5999, NULL));
    CHECK(!Has(&c, 1, "\\a", 6000, NULL));        /* expired exactly at insert + TTL */
    CHECK_EQ(c.Expired, 1);
    CHECK_EQ(AgentshCacheCount(&c), 1);
    CHECK_EQ(AgentshCacheReclaimExpired(&c, 7999, 100), 0);
    CHECK_EQ(AgentshCacheReclaimExpired(&c, 8000, 100), 1);
    CHECK_EQ(c.Expired, 2);
    CHECK_EQ(AgentshCacheCount(&c), 0);
    /* TTL 0 and PENDING are never cached */
    Put(&c, 1, "\\z", DECISION_ALLOW, 0, 1);
    Put(&c, 1, "\\p", DECISION_PENDING, 1000, 1);
    CHECK_EQ(AgentshCacheCount(&c), 0);
    /* eviction of an expired tail counts as expiry, not eviction */
    AgentshCacheSetCapacity(&c, 100);
    {
        char p[32]; int i;
        for (i = 0; i < 100; i++) { snprintf(p, sizeof p, "\\e%d", i); Put(&c, 1, p, DECISION_ALLOW, i == 0 ? 10 : 100000, 100); }
        Put(&c, 1, "\\x", DECISION_ALLOW, 1000, 200);
        CHECK_EQ(c.Evictions, 0);
        CHECK_EQ(c.Expired, 3);
    }
    AgentshCacheDestroy(&c);
}

static void test_cache_capacity_change(void)
{
    AGENTSH_CACHE c;
    char p[32];
    int i;
    CHECK(AgentshCacheInit(&c, 4096) == STATUS_SUCCESS);
    for (i = 0; i < 300; i++) { snprintf(p, sizeof p, "\\c%d", i); Put(&c, 1, p, DECISION_ALLOW, 100000, 1); }
    CHECK_EQ(AgentshCacheCount(&c), 300);
    AgentshCacheSetCapacity(&c, 100);
    CHECK_EQ(AgentshCacheCapacity(&c), 100);
    CHECK_EQ(AgentshCacheCount(&c), 100);
    CHECK_EQ(c.Evictions, 200);
    CHECK(Has(&c, 1, "\\c299", 2, NULL));        /* most recent survive */
    CHECK(Has(&c, 1, "\\c200", 2, NULL));
    CHECK(!Has(&c, 1, "\\c199", 2, NULL));
    AgentshCacheSetCapacity(&c, 100000);         /* grow: rehash into a larger table */
    CHECK_EQ(c.BucketCount, 131072);
    for (i = 200; i < 300; i++) { snprintf(p, sizeof p, "\\c%d", i); CHECK(Has(&c, 1, p, 3, NULL)); }
    for (i = 0; i < 1000; i++) { snprintf(p, sizeof p, "\\g%d", i); Put(&c, 1, p, DECISION_ALLOW, 100000, 4); }
    CHECK_EQ(AgentshCacheCount(&c), 1100);
    /* allocation failure of the new bucket array keeps the old one: same answers */
    AgentshShimFailAllocAfter(0);
    AgentshCacheSetCapacity(&c, 200);
    AgentshShimFailAllocAfter(-1);
    CHECK_EQ(AgentshCacheCount(&c), 200);
    CHECK(Has(&c, 1, "\\g999", 5, NULL));
    AgentshCacheDestroy(&c);
}

static void test_cache_key_case_and_fields(void)
{
    AGENTSH_CACHE c;
    AGENTSH_CACHE_KEY a, b;
    uint32_t d;
    CHECK(AgentshCacheInit(&c, 100) == STATUS_SUCCESS);
    Put(&c, 1, "\\Device\\HarddiskVolume3\\Src\\A.c", DECISION_DENY, 1000, 1);
    CHECK(Has(&c, 1, "\\DEVICE\\harddiskvolume3\\SRC\\a.C", 2, &d));
    CHECK_EQ(d, DECISION_DENY);
    CHECK(!Has(&c, 2, "\\Device\\HarddiskVolume3\\Src\\A.c", 2, NULL));    /* session */
    /* Latin-1 / Greek / Cyrillic fold; dotless i and micro sign do not (not round-trip safe) */
    CHECK_EQ(AgentshUpcase(0x00E9), 0x00C9);
    CHECK_EQ(AgentshUpcase(0x00FF), 0x0178);
    CHECK_EQ(AgentshUpcase(0x03B1), 0x0391);
    CHECK_EQ(AgentshUpcase(0x0436), 0x0416);
    CHECK_EQ(AgentshUpcase(0xFF41), 0xFF21);
    CHECK_EQ(AgentshUpcase(0x0131), 0x0131);
    CHECK_EQ(AgentshUpcase(0x00B5), 0x00B5);
    CHECK_EQ(AgentshUpcase(0x00DF), 0x00DF);     /* sharp s has no single-char uppercase */
    CHECK_EQ(AgentshUpcase(0x10D0), 0x10D0);     /* Georgian: not folded */
    CHECK_EQ(AgentshUpcase('z'), 'Z');
    CHECK_EQ(AgentshUpcase(0xD800), 0xD800);
    Put(&c, 1, "\\Caf\xc3\xa9", DECISION_ALLOW, 1000, 1);
    CHECK(Has(&c, 1, "\\CAF\xc3\x89", 2, NULL));
    /* kind, operation and destination are part of the key */
    MakeKey(a, 1, AGENTSH_KIND_FILE, FILE_OP_RENAME, "\\x", "\\y");
    AgentshCacheInsert(&c, &a, DECISION_ALLOW, 1000, 1, AgentshCacheGeneration(&c));
    MakeKey(b, 1, AGENTSH_KIND_FILE, FILE_OP_RENAME, "\\x", "\\z");
    CHECK(!AgentshCacheLookup(&c, &b, 2, &d));
    AgentshCacheKeyFree(&b);
    MakeKey(b, 1, AGENTSH_KIND_FILE, FILE_OP_RENAME, "\\X", "\\Y");
    CHECK(AgentshCacheLookup(&c, &b, 2, &d));
    AgentshCacheKeyFree(&b);
    MakeKey(b, 1, AGENTSH_KIND_FILE, FILE_OP_DELETE, "\\x", "\\y");
    CHECK(!AgentshCacheLookup(&c, &b, 2, &d));
    AgentshCacheKeyFree(&b);
    MakeKey(b, 1, AGENTSH_KIND_REGISTRY, FILE_OP_RENAME, "\\x", "\\y");
    CHECK(!AgentshCacheLookup(&c, &b, 2, &d));
    AgentshCacheKeyFree(&b);
    /* "\x" + "\y" must not equal "\x\y" + "" (lengths are part of the key) */
    MakeKey(b, 1, AGENTSH_KIND_FILE, FILE_OP_RENAME, "\\x\\y", NULL);
    CHECK(!AgentshCacheLookup(&c, &b, 2, &d));
    AgentshCacheKeyFree(&b);
    AgentshCacheKeyFree(&a);
    AgentshCacheDestroy(&c);
}

static void test_cache_invalidate_scopes(void)
{
    AGENTSH_CACHE c;
    AGENTSH_CACHE_KEY k;
    AGENTSH_USTR pre;
    uint32_t d;
    CHECK(AgentshCacheInit(&c, 100) == STATUS_SUCCESS);
    Put(&c, 1, "\\Device\\V3\\src\\a.c", DECISION_ALLOW, 100000, 1);
    Put(&c, 1, "\\Device\\V3\\src\\b.c", DECISION_ALLOW, 100000, 1);
    Put(&c, 1, "\\Device\\V3\\other\\c.c", DECISION_ALLOW, 100000, 1);
    Put(&c, 2, "\\Device\\V3\\src\\a.c", DECISION_ALLOW, 100000, 1);
    MakeKey(k, 1, AGENTSH_KIND_REGISTRY, REG_OP_SET_VALUE, "\\REGISTRY\\MACHINE\\SOFTWARE\\X", NULL);
    AgentshCacheInsert(&c, &k, DECISION_DENY, 100000, 1, AgentshCacheGeneration(&c));
    AgentshCacheKeyFree(&k);
    MakeKey(k, 1, AGENTSH_KIND_FILE, FILE_OP_RENAME, "\\Device\\V3\\tmp\\t", "\\Device\\V3\\SRC\\t");
    AgentshCacheInsert(&c, &k, DECISION_ALLOW, 100000, 1, AgentshCacheGeneration(&c));
    CHECK_EQ(AgentshCacheCount(&c), 6);

    /* prefix, one session, file kind; the rename whose destination is under the prefix goes too */
    pre = U("\\device\\v3\\SRC");
    AgentshCacheInvalidatePrefix(&c, AGENTSH_KIND_FILE, 1, &pre);
    CHECK(!Has(&c, 1, "\\Device\\V3\\src\\a.c", 2, NULL));
    CHECK(!Has(&c, 1, "\\Device\\V3\\src\\b.c", 2, NULL));
    CHECK(!AgentshCacheLookup(&c, &k, 2, &d));
    CHECK(Has(&c, 1, "\\Device\\V3\\other\\c.c", 2, NULL));
    CHECK(Has(&c, 2, "\\Device\\V3\\src\\a.c", 2, NULL));     /* other session kept */
    AgentshCacheKeyFree(&k);
    /* prefix with kind filter: a registry prefix leaves files alone */
    pre = U("\\");
    AgentshCacheInvalidatePrefix(&c, AGENTSH_KIND_REGISTRY, 0, &pre);
    CHECK_EQ(AgentshCacheCount(&c), 2);
    MakeKey(k, 1, AGENTSH_KIND_REGISTRY, REG_OP_SET_VALUE, "\\REGISTRY\\MACHINE\\SOFTWARE\\X", NULL);
    CHECK(!AgentshCacheLookup(&c, &k, 2, &d));
    AgentshCacheKeyFree(&k);
    /* prefix, every session, any kind */
    Put(&c, 1, "\\Device\\V3\\src\\a.c", DECISION_ALLOW, 100000, 1);
    pre = U("\\Device\\V3\\src\\");
    AgentshCacheInvalidatePrefix(&c, AGENTSH_KIND_ANY, 0, &pre);
    CHECK(!Has(&c, 1, "\\Device\\V3\\src\\a.c", 2, NULL));
    CHECK(!Has(&c, 2, "\\Device\\V3\\src\\a.c", 2, NULL));
    CHECK(Has(&c, 1, "\\Device\\V3\\other\\c.c", 2, NULL));
    /* session */
    Put(&c, 2, "\\q", DECISION_ALLOW, 100000, 1);
    AgentshCacheInvalidateSession(&c, 1);
    CHECK(!Has(&c, 1, "\\Device\\V3\\other\\c.c", 2, NULL));
    CHECK(Has(&c, 2, "\\q", 2, NULL));
    /* all */
    AgentshCacheInvalidateAll(&c);
    CHECK_EQ(AgentshCacheCount(&c), 0);
    CHECK(!Has(&c, 2, "\\q", 2, NULL));
    AgentshCacheDestroy(&c);
}

static void test_cache_generation_drops_late_insert(void)
{
    AGENTSH_CACHE c;
    AGENTSH_CACHE_KEY k;
    uint64_t g;
    uint32_t d;
    CHECK(AgentshCacheInit(&c, 100) == STATUS_SUCCESS);
    MakeKey(k, 1, AGENTSH_KIND_FILE, FILE_OP_WRITE, "\\late", NULL);
    g = AgentshCacheGeneration(&c);
    AgentshCacheInvalidateAll(&c);               /* a flush while the query was outstanding */
    AgentshCacheInsert(&c, &k, DECISION_ALLOW, 1000, 1, g);
    CHECK(!AgentshCacheLookup(&c, &k, 2, &d));
    AgentshCacheInsert(&c, &k, DECISION_ALLOW, 1000, 1, AgentshCacheGeneration(&c));
    CHECK(AgentshCacheLookup(&c, &k, 2, &d));
    AgentshCacheKeyFree(&k);
    /* keys longer than AGENTSH_CACHE_MAX_KEY_CHARS are decided but never cached */
    {
        static uint16_t longPath[AGENTSH_CACHE_MAX_KEY_CHARS + 1];
        AGENTSH_USTR p = U16(longPath, AGENTSH_CACHE_MAX_KEY_CHARS + 1), none = AGENTSH_USTR_EMPTY;
        int i;
        for (i = 0; i <= (int)AGENTSH_CACHE_MAX_KEY_CHARS; i++) longPath[i] = 'a';
        CHECK(AgentshCacheKeyInit(&k, 1, 1, 1, &p, &none, &none) == STATUS_SUCCESS);
        AgentshCacheInsert(&c, &k, DECISION_ALLOW, 1000, 1, AgentshCacheGeneration(&c));
        CHECK(!AgentshCacheLookup(&c, &k, 2, &d));
        AgentshCacheKeyFree(&k);
    }
    AgentshCacheDestroy(&c);
}

const TEST_CASE gCacheTests[] = {
    { "cache_lru_order", test_cache_lru_order },
    { "cache_ttl_expiry_fake_clock", test_cache_ttl_expiry },
    { "cache_capacity_change", test_cache_capacity_change },
    { "cache_key_case_folding_and_fields", test_cache_key_case_and_fields },
    { "cache_invalidate_all_session_prefix", test_cache_invalidate_scopes },
    { "cache_generation_drops_late_insert", test_cache_generation_drops_late_insert },
    { NULL, NULL }
};
