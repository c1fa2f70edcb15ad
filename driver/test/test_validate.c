/* test_validate.c - Size and String rules, replies, builders, and a mutation fuzz of the dispatcher. */
#include "test.h"

static void *Built(uint32_t *Size)
{
    AGENTSH_DECIDE_REQUEST q;
    void *m;
    memset(&q, 0, sizeof(q));
    q.Kind = AGENTSH_KIND_FILE;
    q.Operation = FILE_OP_RENAME;
    q.Strings[0] = U("\\Device\\HarddiskVolume3\\a");
    q.Strings[1] = U("\\Device\\HarddiskVolume3\\b");
    q.Strings[2] = U("\\Device\\HarddiskVolume3");
    if (AgentshBuildPolicyRequest(&q, 7, 1, &m, Size) != STATUS_SUCCESS) abort();
    return m;
}

static void test_validate_builders_roundtrip(void)
{
    uint32_t size, type;
    void *m = Built(&size);
    AGENTSH_FILE_REQUEST f;
    AGENTSH_USTR s;
    AGENTSH_USTR img = U("\\x.exe"), p = U("\\REGISTRY\\A"), v = U("val"), none = AGENTSH_USTR_EMPTY;
    CHECK_EQ(AgentshValidateMessage(m, size, &type), STATUS_SUCCESS);
    CHECK_EQ(type, MSG_POLICY_CHECK_FILE);
    memcpy(&f, m, sizeof(f));
    CHECK_EQ(f.Header.Size, size);
    CHECK_EQ(f.Path.Offset, 72);
    CHECK_EQ(f.Path.Length, 25);
    s = AgentshMessageString(m, &f.RenameDest);
    CHECK_EQ(s.Length, 25);
    CHECK_EQ(s.Buffer[24], (uint16_t)0x62);
    CHECK_EQ(size, 72 + 2 * 26 * 2 + 2 * 24);
    free(m);
    CHECK_EQ(AgentshBuildProcessEvent(MSG_PROCESS_CREATED, 7, 1, 2, 3, 0, &img, &m, &size), STATUS_SUCCESS);
    CHECK_EQ(AgentshValidateMessage(m, size, &type), STATUS_SUCCESS);
    CHECK_EQ(type, MSG_PROCESS_CREATED);
    AgentshFreeMessage(m);
    CHECK_EQ(AgentshBuildProcessEvent(MSG_PROCESS_TERMINATED, 7, 1, 0, 0, -5, &none, &m, &size), STATUS_SUCCESS);
    CHECK_EQ(size, 48);
    CHECK_EQ(AgentshValidateMessage(m, size, NULL), STATUS_SUCCESS);
    AgentshFreeMessage(m);
    CHECK_EQ(AgentshBuildAuditEvent(7, 1, 2, 3, 0, &p, &v, &m, &size), STATUS_SUCCESS);
    CHECK_EQ(AgentshValidateMessage(m, size, &type), STATUS_SUCCESS);
    CHECK_EQ(type, MSG_AUDIT_EVENT);
    AgentshFreeMessage(m);
    /* a string longer than 32767 units cannot be built */
    {
        static uint16_t big[32768];
        AGENTSH_DECIDE_REQUEST q;
        memset(&q, 0, sizeof(q));
        q.Kind = AGENTSH_KIND_FILE; q.Operation = 1;
        q.Strings[0] = U16(big, 32768);
        CHECK_EQ(AgentshBuildPolicyRequest(&q, 7, 1, &m, &size), STATUS_INVALID_PARAMETER);
        /* three maximal strings fit in AGENTSH_MAX_MESSAGE_SIZE */
        memset(big, 'a', sizeof(big));
        q.Strings[0] = q.Strings[1] = q.Strings[2] = U16(big, 32767);
        CHECK_EQ(AgentshBuildPolicyRequest(&q, 7, 1, &m, &size), STATUS_SUCCESS);
        CHECK_EQ(AgentshValidateMessage(m, size, NULL), STATUS_SUCCESS);
        AgentshFreeMessage(m);
        /* and so does the decision event reporting that request */
        CHECK_EQ(AgentshBuildDecisionEvent(&q, 7, DECISION_DENY, DECISION_SOURCE_CACHE, DECISION_REASON_CACHED, 0, 3,
                                           &m, &size), STATUS_SUCCESS);
        CHECK_EQ(size, 88 + 3 * 2 * 32768);
        CHECK_EQ(AgentshValidateMessage(m, size, &type), STATUS_SUCCESS);
        CHECK_EQ(type, MSG_DECISION_EVENT);
        AgentshFreeMessage(m);
        /* a string of the event outside Size makes it malformed */
        q.Strings[1] = q.Strings[2] = none;
        q.Strings[0] = U16(big, 10);
        CHECK_EQ(AgentshBuildDecisionEvent(&q, 7, DECISION_ALLOW, DECISION_SOURCE_FAIL_MODE,
                                           DECISION_REASON_NO_CLIENT, 0, 0, &m, &size), STATUS_SUCCESS);
        CHECK_EQ(size, 88 + 22);
        CHECK_EQ(AgentshValidateMessage(m, size, NULL), STATUS_SUCCESS);
        CHECK_EQ(AgentshValidateMessage(m, size - 2, NULL), STATUS_INVALID_PARAMETER);
        AgentshFreeMessage(m);
    }
}

static void SetStr(uint8_t *m, uint32_t field, uint32_t off, uint32_t len)
{
    AGENTSH_STRING s = { off, len };
    memcpy(m + field, &s, sizeof(s));
}

static void test_validate_size_and_string_rules(void)
{
    uint8_t m[512];
    AGENTSH_MESSAGE_HEADER h;
    uint16_t *w = (uint16_t *)(m + 72);
    memset(m, 0, sizeof(m));
    h.Type = MSG_POLICY_CHECK_FILE; h.Size = 80; h.RequestId = 1;
    memcpy(m, &h, 16);
    ((AGENTSH_FILE_REQUEST *)m)->Operation = FILE_OP_WRITE;
    w[0] = 'a'; w[1] = 'b'; w[2] = 0;
    SetStr(m, 48, 72, 2);
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_SUCCESS);
    CHECK_EQ(AgentshValidateMessage(m, 79, NULL), STATUS_INVALID_PARAMETER);   /* Size > received */
    CHECK_EQ(AgentshValidateMessage(m, 15, NULL), STATUS_INVALID_PARAMETER);
    CHECK_EQ(AgentshValidateMessage(NULL, 80, NULL), STATUS_INVALID_PARAMETER);
    h.Size = 15; memcpy(m, &h, 16);
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    h.Size = 70; memcpy(m, &h, 16);                                              /* below the fixed size */
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    h.Size = AGENTSH_MAX_MESSAGE_SIZE + 2; memcpy(m, &h, 16);
    CHECK_EQ(AgentshValidateMessage(m, 0xFFFFFFFFu, NULL), STATUS_INVALID_PARAMETER);
    h.Size = 80; memcpy(m, &h, 16);
    SetStr(m, 48, 73, 2);                                                         /* odd offset */
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    SetStr(m, 48, 64, 2);                                                         /* inside fixed part */
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    SetStr(m, 48, 72, 4);                                                         /* NUL past Size */
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    SetStr(m, 48, 72, 1);                                                         /* no NUL at Length */
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    SetStr(m, 48, 0xFFFFFFFEu, 0x7FFF);                                           /* overflow attempt */
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    SetStr(m, 48, 72, 0x80000000u);
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    SetStr(m, 48, 0, 0);                                                          /* Path required */
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    SetStr(m, 48, 72, 2);
    SetStr(m, 56, 0, 1);                                                          /* Length without Offset */
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    SetStr(m, 56, 76, 0);                                                         /* present, empty: ok */
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_SUCCESS);
    SetStr(m, 56, 0, 0);
    /* surrogates */
    w[0] = 0xD800; w[1] = 0xDC00;
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_SUCCESS);
    w[0] = 0xDC00; w[1] = 'a';
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    w[0] = 'a'; w[1] = 0xD800;
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    w[0] = 0xD800; w[1] = 'a';
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    w[0] = 0; w[1] = 'a';                                                         /* embedded NUL is fine */
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_SUCCESS);
    ((AGENTSH_FILE_REQUEST *)m)->Operation = 7;
    CHECK_EQ(AgentshValidateMessage(m, 80, NULL), STATUS_INVALID_PARAMETER);
    /* fixed-size types */
    h.Type = MSG_UNREGISTER_SESSION; h.Size = 24; memcpy(m, &h, 16);
    CHECK_EQ(AgentshValidateMessage(m, 24, NULL), STATUS_SUCCESS);
    h.Size = 32; memcpy(m, &h, 16);
    CHECK_EQ(AgentshValidateMessage(m, 32, NULL), STATUS_INVALID_PARAMETER);
    h.Type = MSG_GET_METRICS; h.Size = 24; memcpy(m, &h, 16);
    CHECK_EQ(AgentshValidateMessage(m, 24, NULL), STATUS_INVALID_PARAMETER);
    h.Type = 9999; h.Size = 16; memcpy(m, &h, 16);
    CHECK_EQ(AgentshValidateMessage(m, 16, NULL), STATUS_NOT_SUPPORTED);
}

static void test_validate_reply(void)
{
    AGENTSH_POLICY_RESPONSE r;
    uint32_t d, t;
    memset(&r, 0, sizeof(r));
    r.Header.Type = MSG_POLICY_RESPONSE; r.Header.Size = 32; r.Header.RequestId = 9;
    r.Decision = DECISION_PENDING; r.CacheTTLMs = 77;
    CHECK_EQ(AgentshValidateReply(&r, 32, 9, &d, &t), STATUS_SUCCESS);
    CHECK_EQ(d, DECISION_PENDING);
    CHECK_EQ(t, 77);
    CHECK_EQ(AgentshValidateReply(&r, 31, 9, &d, &t), STATUS_INVALID_PARAMETER);
    CHECK_EQ(AgentshValidateReply(&r, 32, 8, &d, &t), STATUS_INVALID_PARAMETER);
    r.Header.Size = 48;
    CHECK_EQ(AgentshValidateReply(&r, 32, 9, &d, &t), STATUS_INVALID_PARAMETER);
    r.Header.Size = 32; r.Reserved = 1;
    CHECK_EQ(AgentshValidateReply(&r, 32, 9, &d, &t), STATUS_INVALID_PARAMETER);
    r.Reserved = 0; r.Decision = 3;
    CHECK_EQ(AgentshValidateReply(&r, 32, 9, &d, &t), STATUS_INVALID_PARAMETER);
    CHECK_EQ(AgentshCoreValidateConnectContext(NULL, 0), STATUS_INVALID_PARAMETER);
    {
        AGENTSH_CONNECT_CONTEXT c = { AGENTSH_CONNECT_MAGIC, AGENTSH_PROTOCOL_VERSION, 1, 0 };
        CHECK_EQ(AgentshCoreValidateConnectContext(&c, 16), STATUS_SUCCESS);
        CHECK_EQ(AgentshCoreValidateConnectContext(&c, 15), STATUS_INVALID_PARAMETER);
        c.ProtocolVersion = 2;
        CHECK_EQ(AgentshCoreValidateConnectContext(&c, 16), STATUS_REVISION_MISMATCH);
        c.ProtocolVersion = 1; c.Magic ^= 1;
        CHECK_EQ(AgentshCoreValidateConnectContext(&c, 16), STATUS_INVALID_PARAMETER);
        c.Magic ^= 1; c.Flags = 1;
        CHECK_EQ(AgentshCoreValidateConnectContext(&c, 16), STATUS_INVALID_PARAMETER);
    }
}

static uint64_t gRng = 0x9E3779B97F4A7C15ull;
static uint32_t Rand(void)
{
    gRng ^= gRng << 13; gRng ^= gRng >> 7; gRng ^= gRng << 17;
    return (uint32_t)gRng;
}

/* Every valid user -> driver message, truncated at every length and randomly mutated, goes through
 * the dispatcher copied into an exact-size heap buffer: ASan flags any read outside it. */
static void test_validate_fuzz_dispatch(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    void *seeds[8];
    uint32_t sizes[8], n = 0, i, round;
    AGENTSH_CONFIG cfg;
    uint8_t exclude[24 + 8];
    AGENTSH_PING ping;
    AGENTSH_MESSAGE_HEADER gm = { MSG_GET_METRICS, 16, 1 };

    CoreSetup(&core, &port);
    seeds[n] = BuildWithString(MSG_REGISTER_SESSION, 40, 32, "\\Device\\HarddiskVolume3\\w", &sizes[n]);
    ((AGENTSH_SESSION_REGISTER *)seeds[n])->SessionToken = 55;
    ((AGENTSH_SESSION_REGISTER *)seeds[n])->RootProcessId = 4000;
    n++;
    seeds[n] = BuildWithString(MSG_UPDATE_CACHE, 40, 32, "\\Device\\HarddiskVolume3\\w", &sizes[n]);
    ((AGENTSH_CACHE_UPDATE *)seeds[n])->Scope = CACHE_SCOPE_PATH_PREFIX;
    n++;
    memset(&cfg, 0, sizeof(cfg));
    cfg.Header.Type = MSG_SET_CONFIG; cfg.Header.Size = 48; cfg.PolicyQueryTimeoutMs = 5000;
    cfg.MaxConsecutiveFailures = 10; cfg.CacheMaxEntries = 4096; cfg.CacheDefaultTTLMs = 5000;
    cfg.CacheMaxTTLMs = 5000; cfg.ProbeIntervalMs = 1000;
    seeds[n] = malloc(48); memcpy(seeds[n], &cfg, 48); sizes[n++] = 48;
    memset(exclude, 0, sizeof(exclude));
    ((AGENTSH_EXCLUDE_PROCESS *)exclude)->Header.Type = MSG_EXCLUDE_PROCESS;
    ((AGENTSH_EXCLUDE_PROCESS *)exclude)->Header.Size = 32;
    ((AGENTSH_EXCLUDE_PROCESS *)exclude)->Count = 2;
    ((uint32_t *)(exclude + 24))[0] = 8; ((uint32_t *)(exclude + 24))[1] = 12;
    seeds[n] = malloc(32); memcpy(seeds[n], exclude, 32); sizes[n++] = 32;
    memset(&ping, 0, sizeof(ping));
    ping.Header.Type = MSG_PING; ping.Header.Size = 24;
    seeds[n] = malloc(24); memcpy(seeds[n], &ping, 24); sizes[n++] = 24;
    seeds[n] = malloc(16); memcpy(seeds[n], &gm, 16); sizes[n++] = 16;
    seeds[n] = Built(&sizes[n]); n++;

    for (i = 0; i < n; i++) {
        uint32_t len;
        for (len = 0; len <= sizes[i]; len++) {
            uint8_t *copy = malloc(len ? len : 1);
            uint8_t out[200];
            UINT32 got;
            memcpy(copy, seeds[i], len);
            (void)AgentshCoreDispatch(&core, copy, len, out, sizeof(out), &got);
            (void)AgentshValidateMessage(copy, len, NULL);
            free(copy);
        }
    }
    for (round = 0; round < 20000; round++) {
        uint32_t k = Rand() % n, len = sizes[k], flips = 1 + Rand() % 4, j;
        uint8_t *copy;
        uint8_t out[200];
        UINT32 got;
        if (Rand() % 4 == 0) len = Rand() % (sizes[k] + 1);
        copy = malloc(len ? len : 1);
        memcpy(copy, seeds[k], len);
        for (j = 0; j < flips && len; j++) {
            uint32_t at = Rand() % len;
            switch (Rand() % 3) {
            case 0: copy[at] ^= (uint8_t)(1u << (Rand() % 8)); break;
            case 1: copy[at] = (uint8_t)Rand(); break;
            default: if (at + 4 <= len) { uint32_t v = Rand() % 4 ? Rand() % 300 : Rand(); memcpy(copy + at, &v, 4); } break;
            }
        }
        (void)AgentshCoreDispatch(&core, copy, len, out, sizeof(out), &got);
        free(copy);
    }
    for (i = 0; i < n; i++) free(seeds[i]);
    CHECK(AgentshCacheCount(&core.Cache) <= AgentshCacheCapacity(&core.Cache));
    CoreTeardown(&core);
}

const TEST_CASE gValidateTests[] = {
    { "validate_builders_roundtrip", test_validate_builders_roundtrip },
    { "validate_size_and_string_rules", test_validate_size_and_string_rules },
    { "validate_reply_and_connect_context", test_validate_reply },
    { "validate_fuzz_dispatch_truncation_mutation", test_validate_fuzz_dispatch },
    { NULL, NULL }
};
