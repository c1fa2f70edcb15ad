/*
 * ash_cache.c - the decision cache: a hash table + true LRU list + per-entry TTL, with in-flight
 * collapse of identical concurrent queries.
 *
 * One exclusive lock (Cache->Lock) guards buckets, LRU list, in-flight list and counts: a hit moves
 * the entry to the front of the LRU, so even lookups write. Allocations and frees of keys happen
 * outside the lock; entries are freed under it (a free never blocks).
 *
 * Keys are case-folded with AgentshUpcase (ASCII + the round-trip-safe table of
 * ash_upcase_table.h), so \Device\HarddiskVolume3\Src and \DEVICE\harddiskvolume3\SRC share an entry.
 *
 * Generation: every invalidation bumps Cache->Generation. A query captures the generation before it
 * asks; its answer is inserted only if no invalidation happened meanwhile, so a flush can never be
 * undone by a reply that was computed under the old policy.
 */
#include "agentsh_core.h"

struct _AGENTSH_CACHE_ENTRY {
    AGENTSH_CACHE_ENTRY *HashNext;
    AGENTSH_LINK Lru;
    UINT64 SessionToken;
    UINT64 Hash;
    UINT64 ExpiresMs;
    UINT32 Kind;
    UINT32 Operation;
    UINT32 Decision;
    UINT32 Length[3];
    UINT32 TotalChars;
    UINT16 Text[1];  /* TotalChars units (allocation sized accordingly) */
};

#define AGENTSH_ENTRY_SIZE(chars) (offsetof(AGENTSH_CACHE_ENTRY, Text) + (SIZE_T)(chars) * sizeof(UINT16))
#define AGENTSH_MIN_BUCKETS 64u
#define AGENTSH_MAX_BUCKETS 131072u

#include "ash_upcase_table.h"

UINT16 AgentshUpcase(_In_ UINT16 C)
{
    UINT32 lo, hi;
    if (C < 0x80) {
        return (C >= 'a' && C <= 'z') ? (UINT16)(C - 32) : C;
    }
    if (C < AgentshUpcaseRuns[0].First) {
        return C;
    }
    lo = 0;
    hi = (UINT32)(sizeof(AgentshUpcaseRuns) / sizeof(AgentshUpcaseRuns[0]));
    while (lo < hi) {
        UINT32 mid = lo + (hi - lo) / 2;
        const AGENTSH_UPCASE_RUN *r = &AgentshUpcaseRuns[mid];
        if (C < r->First) {
            hi = mid;
        } else if (C > r->Last) {
            lo = mid + 1;
        } else {
            if (((UINT32)(C - r->First) % r->Stride) == 0) {
                return (UINT16)((INT32)C + r->Delta);
            }
            return C;
        }
    }
    return C;
}

static UINT32 AgentshBucketCountFor(UINT32 Capacity)
{
    UINT32 n = AGENTSH_MIN_BUCKETS;
    while (n < Capacity && n < AGENTSH_MAX_BUCKETS) {
        n <<= 1;
    }
    return n;
}

#define AGENTSH_FNV_OFFSET 0xcbf29ce484222325ULL
#define AGENTSH_FNV_PRIME  0x100000001b3ULL

AGENTSH_INLINE UINT64 AgentshFnvU32(UINT64 h, UINT32 v)
{
    h = (h ^ (v & 0xFFFFu)) * AGENTSH_FNV_PRIME;
    h = (h ^ (v >> 16)) * AGENTSH_FNV_PRIME;
    return h;
}

_Must_inspect_result_ NTSTATUS AgentshCacheKeyInit(_Out_ AGENTSH_CACHE_KEY *Key, _In_ UINT64 SessionToken,
    _In_ UINT32 Kind, _In_ UINT32 Operation, _In_ const AGENTSH_USTR *S0, _In_ const AGENTSH_USTR *S1,
    _In_ const AGENTSH_USTR *S2)
{
    const AGENTSH_USTR *parts[3];
    UINT32 i, j, total = 0, pos = 0;
    UINT64 h = AGENTSH_FNV_OFFSET;

    parts[0] = S0;
    parts[1] = S1;
    parts[2] = S2;
    Key->Text = NULL;
    for (i = 0; i < 3; i++) {
        if (parts[i]->Length > AGENTSH_MAX_STRING_CHARS || (parts[i]->Length != 0 && parts[i]->Buffer == NULL)) {
            return STATUS_INVALID_PARAMETER;
        }
        total += parts[i]->Length; /* <= 3 * 32767: no overflow */
    }
    if (total <= AGENTSH_KEY_INLINE_CHARS) {
        Key->Text = Key->Inline;
    } else {
        Key->Text = (UINT16 *)AgentshAlloc((SIZE_T)total * sizeof(UINT16), AGENTSH_TAG_KEY, AGENTSH_POOL_PAGED);
        if (Key->Text == NULL) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    Key->SessionToken = SessionToken;
    Key->Kind = Kind;
    Key->Operation = Operation;
    Key->TotalChars = total;
    h = AgentshFnvU32(h, (UINT32)SessionToken);
    h = AgentshFnvU32(h, (UINT32)(SessionToken >> 32));
    h = AgentshFnvU32(h, Kind);
    h = AgentshFnvU32(h, Operation);
    for (i = 0; i < 3; i++) {
        Key->Length[i] = parts[i]->Length;
        h = AgentshFnvU32(h, parts[i]->Length);
        for (j = 0; j < parts[i]->Length; j++) {
            UINT16 c = AgentshUpcase(parts[i]->Buffer[j]);
            Key->Text[pos++] = c;
            h = (h ^ c) * AGENTSH_FNV_PRIME;
        }
    }
    Key->Hash = h;
    return STATUS_SUCCESS;
}

void AgentshCacheKeyFree(_Inout_ AGENTSH_CACHE_KEY *Key)
{
    if (Key->Text != NULL && Key->Text != Key->Inline) {
        AgentshFree(Key->Text, AGENTSH_TAG_KEY);
    }
    Key->Text = NULL;
}

static BOOLEAN AgentshKeyEquals(_In_ const AGENTSH_CACHE_KEY *Key, _In_ UINT64 Hash, _In_ UINT64 Session,
    _In_ UINT32 Kind, _In_ UINT32 Operation, _In_reads_(3) const UINT32 *Length, _In_ const UINT16 *Text)
{
    return Key->Hash == Hash && Key->SessionToken == Session && Key->Kind == Kind &&
           Key->Operation == Operation && Key->Length[0] == Length[0] && Key->Length[1] == Length[1] &&
           Key->Length[2] == Length[2] &&
           (Key->TotalChars == 0 ||
            AgentshMemCmp(Key->Text, Text, (SIZE_T)Key->TotalChars * sizeof(UINT16)) == 0);
}

_Must_inspect_result_ NTSTATUS AgentshCacheInit(_Out_ AGENTSH_CACHE *Cache, _In_ UINT32 Capacity)
{
    AgentshMemZero(Cache, sizeof(*Cache));
    Cache->BucketCount = AgentshBucketCountFor(Capacity);
    Cache->Buckets = (AGENTSH_CACHE_ENTRY **)AgentshAlloc(
        (SIZE_T)Cache->BucketCount * sizeof(AGENTSH_CACHE_ENTRY *), AGENTSH_TAG_CACHE_BUCKETS, AGENTSH_POOL_PAGED);
    if (Cache->Buckets == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    Cache->Capacity = Capacity;
    AgentshLinkInit(&Cache->Lru);
    AgentshLinkInit(&Cache->InFlight);
    AgentshLockInit(&Cache->Lock);
    return STATUS_SUCCESS;
}

/* Unlinks E from its bucket chain and the LRU list, frees it. Lock held exclusive. */
static void AgentshCacheRemoveLocked(_Inout_ AGENTSH_CACHE *Cache, _Inout_ AGENTSH_CACHE_ENTRY *E)
{
    AGENTSH_CACHE_ENTRY **pp = &Cache->Buckets[E->Hash & (Cache->BucketCount - 1)];
    while (*pp != NULL && *pp != E) {
        pp = &(*pp)->HashNext;
    }
    AgentshAssert(*pp == E);
    if (*pp == E) {
        *pp = E->HashNext;
    }
    AgentshLinkRemove(&E->Lru);
    Cache->Count--;
    AgentshFree(E, AGENTSH_TAG_CACHE_ENTRY);
}

/* Evicts least recently used entries until Count <= Target. Lock held exclusive. */
static void AgentshCacheTrimLocked(_Inout_ AGENTSH_CACHE *Cache, _In_ UINT32 Target, _In_ UINT64 NowMs)
{
    while (Cache->Count > Target && !AgentshLinkEmpty(&Cache->Lru)) {
        AGENTSH_CACHE_ENTRY *tail = AGENTSH_CONTAINING(Cache->Lru.Prev, AGENTSH_CACHE_ENTRY, Lru);
        if (NowMs != 0 && NowMs >= tail->ExpiresMs) {
            AgentshAtomicInc64(&Cache->Expired);
        } else {
            AgentshAtomicInc64(&Cache->Evictions);
        }
        AgentshCacheRemoveLocked(Cache, tail);
    }
}

static void AgentshCacheClearLocked(_Inout_ AGENTSH_CACHE *Cache)
{
    while (!AgentshLinkEmpty(&Cache->Lru)) {
        AGENTSH_CACHE_ENTRY *e = AGENTSH_CONTAINING(Cache->Lru.Next, AGENTSH_CACHE_ENTRY, Lru);
        AgentshLinkRemove(&e->Lru);
        AgentshFree(e, AGENTSH_TAG_CACHE_ENTRY);
    }
    AgentshMemZero(Cache->Buckets, (SIZE_T)Cache->BucketCount * sizeof(AGENTSH_CACHE_ENTRY *));
    Cache->Count = 0;
}

void AgentshCacheDestroy(_Inout_ AGENTSH_CACHE *Cache)
{
    if (Cache->Buckets == NULL) {
        return;
    }
    AgentshLockExclusive(&Cache->Lock);
    AgentshCacheClearLocked(Cache);
    AgentshUnlockExclusive(&Cache->Lock);
    /* In-flight records belong to their owners; by contract none is outstanding at destroy. */
    AgentshFree(Cache->Buckets, AGENTSH_TAG_CACHE_BUCKETS);
    Cache->Buckets = NULL;
    AgentshLockDelete(&Cache->Lock);
}

void AgentshCacheSetCapacity(_Inout_ AGENTSH_CACHE *Cache, _In_ UINT32 Capacity)
{
    UINT32 want = AgentshBucketCountFor(Capacity);
    AGENTSH_CACHE_ENTRY **fresh = NULL;
    AGENTSH_CACHE_ENTRY **old = NULL;

    AgentshLockShared(&Cache->Lock);
    if (want != Cache->BucketCount) {
        AgentshUnlockShared(&Cache->Lock);
        fresh = (AGENTSH_CACHE_ENTRY **)AgentshAlloc((SIZE_T)want * sizeof(AGENTSH_CACHE_ENTRY *),
                                                     AGENTSH_TAG_CACHE_BUCKETS, AGENTSH_POOL_PAGED);
    } else {
        AgentshUnlockShared(&Cache->Lock);
    }

    AgentshLockExclusive(&Cache->Lock);
    Cache->Capacity = Capacity;
    AgentshCacheTrimLocked(Cache, Capacity, 0);
    if (fresh != NULL && want != Cache->BucketCount) {
        AGENTSH_LINK *l;
        /* Rehash every entry (the LRU list holds them all). On allocation failure the old, smaller
         * or larger, bucket array stays: longer or sparser chains, same answers. */
        for (l = Cache->Lru.Next; l != &Cache->Lru; l = l->Next) {
            AGENTSH_CACHE_ENTRY *e = AGENTSH_CONTAINING(l, AGENTSH_CACHE_ENTRY, Lru);
            UINT32 b = (UINT32)(e->Hash & (want - 1));
            e->HashNext = fresh[b];
            fresh[b] = e;
        }
        old = Cache->Buckets;
        Cache->Buckets = fresh;
        Cache->BucketCount = want;
        fresh = NULL;
    }
    AgentshUnlockExclusive(&Cache->Lock);
    if (old != NULL) {
        AgentshFree(old, AGENTSH_TAG_CACHE_BUCKETS);
    }
    if (fresh != NULL) {
        AgentshFree(fresh, AGENTSH_TAG_CACHE_BUCKETS);
    }
}

/* Finds the live entry for Key; removes it if expired. Lock held exclusive. */
static AGENTSH_CACHE_ENTRY *AgentshCacheFindLocked(_Inout_ AGENTSH_CACHE *Cache, _In_ const AGENTSH_CACHE_KEY *Key,
    _In_ UINT64 NowMs)
{
    AGENTSH_CACHE_ENTRY **pp = &Cache->Buckets[Key->Hash & (Cache->BucketCount - 1)];
    AGENTSH_CACHE_ENTRY *e;
    for (e = *pp; e != NULL; pp = &e->HashNext, e = e->HashNext) {
        if (AgentshKeyEquals(Key, e->Hash, e->SessionToken, e->Kind, e->Operation, e->Length, e->Text)) {
            if (NowMs >= e->ExpiresMs) {
                *pp = e->HashNext;
                AgentshLinkRemove(&e->Lru);
                Cache->Count--;
                AgentshFree(e, AGENTSH_TAG_CACHE_ENTRY);
                AgentshAtomicInc64(&Cache->Expired);
                return NULL;
            }
            return e;
        }
    }
    return NULL;
}

static AGENTSH_INFLIGHT *AgentshCacheFindInFlightLocked(_Inout_ AGENTSH_CACHE *Cache,
    _In_ const AGENTSH_CACHE_KEY *Key)
{
    AGENTSH_LINK *l;
    for (l = Cache->InFlight.Next; l != &Cache->InFlight; l = l->Next) {
        AGENTSH_INFLIGHT *f = AGENTSH_CONTAINING(l, AGENTSH_INFLIGHT, Link);
        const AGENTSH_CACHE_KEY *k = f->Key;
        if (AgentshKeyEquals(Key, k->Hash, k->SessionToken, k->Kind, k->Operation, k->Length, k->Text)) {
            return f;
        }
    }
    return NULL;
}

BOOLEAN AgentshCacheLookup(_Inout_ AGENTSH_CACHE *Cache, _In_ AGENTSH_CACHE_KEY *Key, _In_ UINT64 NowMs,
    _Out_ UINT32 *Decision)
{
    AGENTSH_CACHE_ENTRY *e;
    BOOLEAN hit = FALSE;
    *Decision = DECISION_DENY;
    AgentshLockExclusive(&Cache->Lock);
    e = AgentshCacheFindLocked(Cache, Key, NowMs);
    if (e != NULL) {
        AgentshLinkRemove(&e->Lru);
        AgentshLinkInsertHead(&Cache->Lru, &e->Lru);
        *Decision = e->Decision;
        hit = TRUE;
    }
    AgentshUnlockExclusive(&Cache->Lock);
    AgentshAtomicInc64(hit ? &Cache->Hits : &Cache->Misses);
    return hit;
}

int AgentshCacheLookupOrJoin(_Inout_ AGENTSH_CACHE *Cache, _In_ AGENTSH_CACHE_KEY *Key, _In_ UINT64 NowMs,
    _Out_ UINT32 *Decision, _Out_ AGENTSH_INFLIGHT **InFlight)
{
    AGENTSH_CACHE_ENTRY *e;
    AGENTSH_INFLIGHT *f;
    AGENTSH_INFLIGHT *fresh;

    *Decision = DECISION_DENY;
    *InFlight = NULL;
    /* Allocated before the lock (non-paged: it embeds an event); freed if unused. Pre-allocating on
     * every lookup would tax hits, so first try a lookup without it. */
    AgentshLockExclusive(&Cache->Lock);
    e = AgentshCacheFindLocked(Cache, Key, NowMs);
    if (e != NULL) {
        AgentshLinkRemove(&e->Lru);
        AgentshLinkInsertHead(&Cache->Lru, &e->Lru);
        *Decision = e->Decision;
        AgentshUnlockExclusive(&Cache->Lock);
        AgentshAtomicInc64(&Cache->Hits);
        return AGENTSH_CACHE_HIT;
    }
    f = AgentshCacheFindInFlightLocked(Cache, Key);
    if (f != NULL) {
        AgentshAtomicInc32(&f->RefCount);
        AgentshUnlockExclusive(&Cache->Lock);
        AgentshAtomicInc64(&Cache->Misses);
        AgentshAtomicInc64(&Cache->Collapsed);
        *InFlight = f;
        return AGENTSH_CACHE_MISS_WAITER;
    }
    AgentshUnlockExclusive(&Cache->Lock);
    AgentshAtomicInc64(&Cache->Misses);

    fresh = (AGENTSH_INFLIGHT *)AgentshAlloc(sizeof(AGENTSH_INFLIGHT), AGENTSH_TAG_INFLIGHT, AGENTSH_POOL_NONPAGED);
    if (fresh == NULL) {
        return AGENTSH_CACHE_MISS_ALONE;
    }
    AgentshEventInit(&fresh->Done);
    fresh->RefCount = 1;
    fresh->Key = Key;

    /* Re-check: an identical query may have registered (or completed) between the two locks. */
    AgentshLockExclusive(&Cache->Lock);
    e = AgentshCacheFindLocked(Cache, Key, NowMs);
    if (e != NULL) {
        AgentshLinkRemove(&e->Lru);
        AgentshLinkInsertHead(&Cache->Lru, &e->Lru);
        *Decision = e->Decision;
        AgentshUnlockExclusive(&Cache->Lock);
        AgentshEventDelete(&fresh->Done);
        AgentshFree(fresh, AGENTSH_TAG_INFLIGHT);
        /* counted as a miss above; the answer still comes from the cache */
        return AGENTSH_CACHE_HIT;
    }
    f = AgentshCacheFindInFlightLocked(Cache, Key);
    if (f != NULL) {
        AgentshAtomicInc32(&f->RefCount);
        AgentshUnlockExclusive(&Cache->Lock);
        AgentshEventDelete(&fresh->Done);
        AgentshFree(fresh, AGENTSH_TAG_INFLIGHT);
        AgentshAtomicInc64(&Cache->Collapsed);
        *InFlight = f;
        return AGENTSH_CACHE_MISS_WAITER;
    }
    fresh->Generation = Cache->Generation;
    AgentshLinkInsertHead(&Cache->InFlight, &fresh->Link);
    Cache->InFlightCount++;
    AgentshUnlockExclusive(&Cache->Lock);
    *InFlight = fresh;
    return AGENTSH_CACHE_MISS_OWNER;
}

UINT64 AgentshCacheGeneration(_Inout_ AGENTSH_CACHE *Cache)
{
    UINT64 g;
    AgentshLockShared(&Cache->Lock);
    g = Cache->Generation;
    AgentshUnlockShared(&Cache->Lock);
    return g;
}

/* Lock held exclusive; consumes E (inserted or freed). */
static void AgentshCacheInsertLocked(_Inout_ AGENTSH_CACHE *Cache, _Inout_ AGENTSH_CACHE_ENTRY *E,
    _In_ UINT64 NowMs, _In_ UINT64 Generation)
{
    AGENTSH_CACHE_KEY view;
    AGENTSH_CACHE_ENTRY *old;
    UINT32 b;

    if (Generation != Cache->Generation || Cache->Capacity == 0) {
        AgentshFree(E, AGENTSH_TAG_CACHE_ENTRY);
        return;
    }
    view.SessionToken = E->SessionToken;
    view.Kind = E->Kind;
    view.Operation = E->Operation;
    view.Hash = E->Hash;
    view.Length[0] = E->Length[0];
    view.Length[1] = E->Length[1];
    view.Length[2] = E->Length[2];
    view.TotalChars = E->TotalChars;
    view.Text = E->Text;
    old = AgentshCacheFindLocked(Cache, &view, NowMs);
    if (old != NULL) {
        old->Decision = E->Decision;
        old->ExpiresMs = E->ExpiresMs;
        AgentshLinkRemove(&old->Lru);
        AgentshLinkInsertHead(&Cache->Lru, &old->Lru);
        AgentshFree(E, AGENTSH_TAG_CACHE_ENTRY);
        return;
    }
    AgentshCacheTrimLocked(Cache, Cache->Capacity - 1, NowMs);
    b = (UINT32)(E->Hash & (Cache->BucketCount - 1));
    E->HashNext = Cache->Buckets[b];
    Cache->Buckets[b] = E;
    AgentshLinkInsertHead(&Cache->Lru, &E->Lru);
    Cache->Count++;
}

static AGENTSH_CACHE_ENTRY *AgentshCacheNewEntry(_In_ const AGENTSH_CACHE_KEY *Key, _In_ UINT32 Decision,
    _In_ UINT32 TtlMs, _In_ UINT64 NowMs)
{
    AGENTSH_CACHE_ENTRY *e;
    if (TtlMs == 0 || Key->TotalChars > AGENTSH_CACHE_MAX_KEY_CHARS ||
        (Decision != DECISION_ALLOW && Decision != DECISION_DENY)) {
        return NULL;
    }
    e = (AGENTSH_CACHE_ENTRY *)AgentshAlloc(AGENTSH_ENTRY_SIZE(Key->TotalChars ? Key->TotalChars : 1),
                                            AGENTSH_TAG_CACHE_ENTRY, AGENTSH_POOL_PAGED);
    if (e == NULL) {
        return NULL;
    }
    e->SessionToken = Key->SessionToken;
    e->Hash = Key->Hash;
    e->ExpiresMs = NowMs + TtlMs;
    e->Kind = Key->Kind;
    e->Operation = Key->Operation;
    e->Decision = Decision;
    e->Length[0] = Key->Length[0];
    e->Length[1] = Key->Length[1];
    e->Length[2] = Key->Length[2];
    e->TotalChars = Key->TotalChars;
    if (Key->TotalChars != 0) {
        AgentshMemCopy(e->Text, Key->Text, (SIZE_T)Key->TotalChars * sizeof(UINT16));
    }
    AgentshLinkInit(&e->Lru);
    return e;
}

void AgentshCacheInsert(_Inout_ AGENTSH_CACHE *Cache, _In_ const AGENTSH_CACHE_KEY *Key, _In_ UINT32 Decision,
    _In_ UINT32 TtlMs, _In_ UINT64 NowMs, _In_ UINT64 Generation)
{
    AGENTSH_CACHE_ENTRY *e = AgentshCacheNewEntry(Key, Decision, TtlMs, NowMs);
    if (e == NULL) {
        return;
    }
    AgentshLockExclusive(&Cache->Lock);
    AgentshCacheInsertLocked(Cache, e, NowMs, Generation);
    AgentshUnlockExclusive(&Cache->Lock);
}

static void AgentshInFlightRelease(_Inout_ AGENTSH_INFLIGHT *F)
{
    if (AgentshAtomicDec32(&F->RefCount) == 0) {
        AgentshEventDelete(&F->Done);
        AgentshFree(F, AGENTSH_TAG_INFLIGHT);
    }
}

void AgentshCacheCompleteQuery(_Inout_ AGENTSH_CACHE *Cache, _Inout_ AGENTSH_INFLIGHT *InFlight,
    _In_ const AGENTSH_INFLIGHT_ANSWER *Answer, _In_ BOOLEAN Insert, _In_ UINT32 TtlMs, _In_ UINT64 NowMs,
    _In_ UINT64 Generation)
{
    AGENTSH_CACHE_ENTRY *e = Insert ? AgentshCacheNewEntry(InFlight->Key, Answer->Decision, TtlMs, NowMs) : NULL;

    AgentshLockExclusive(&Cache->Lock);
    AgentshLinkRemove(&InFlight->Link);
    Cache->InFlightCount--;
    InFlight->Key = NULL; /* the owner's key dies with the owner's frame */
    if (e != NULL) {
        AgentshCacheInsertLocked(Cache, e, NowMs, Generation);
    }
    AgentshUnlockExclusive(&Cache->Lock);

    InFlight->Answer = *Answer;
    AgentshEventSet(&InFlight->Done); /* release semantics: the answer is visible to waiters */
    AgentshInFlightRelease(InFlight);
}

BOOLEAN AgentshCacheWaitQuery(_Inout_ AGENTSH_INFLIGHT *InFlight, _In_ UINT32 TimeoutMs,
    _Out_ AGENTSH_INFLIGHT_ANSWER *Answer)
{
    BOOLEAN done = AgentshEventWait(&InFlight->Done, TimeoutMs);
    if (done) {
        *Answer = InFlight->Answer;
    } else {
        AgentshMemZero(Answer, sizeof(*Answer)); /* no answer: the caller applies its fail mode */
    }
    AgentshInFlightRelease(InFlight);
    return done;
}

void AgentshCacheInvalidateAll(_Inout_ AGENTSH_CACHE *Cache)
{
    AgentshLockExclusive(&Cache->Lock);
    Cache->Generation++;
    AgentshCacheClearLocked(Cache);
    AgentshUnlockExclusive(&Cache->Lock);
}

void AgentshCacheInvalidateSession(_Inout_ AGENTSH_CACHE *Cache, _In_ UINT64 SessionToken)
{
    AGENTSH_LINK *l, *next;
    AgentshLockExclusive(&Cache->Lock);
    Cache->Generation++;
    for (l = Cache->Lru.Next; l != &Cache->Lru; l = next) {
        AGENTSH_CACHE_ENTRY *e = AGENTSH_CONTAINING(l, AGENTSH_CACHE_ENTRY, Lru);
        next = l->Next;
        if (e->SessionToken == SessionToken) {
            AgentshCacheRemoveLocked(Cache, e);
        }
    }
    AgentshUnlockExclusive(&Cache->Lock);
}

static BOOLEAN AgentshHasPrefix(_In_reads_(Length) const UINT16 *Text, _In_ UINT32 Length,
    _In_reads_(PrefixLength) const UINT16 *Prefix, _In_ UINT32 PrefixLength)
{
    return PrefixLength <= Length &&
           (PrefixLength == 0 || AgentshMemCmp(Text, Prefix, (SIZE_T)PrefixLength * sizeof(UINT16)) == 0);
}

void AgentshCacheInvalidatePrefix(_Inout_ AGENTSH_CACHE *Cache, _In_ UINT32 Kind, _In_ UINT64 SessionToken,
    _In_ const AGENTSH_USTR *Prefix)
{
    AGENTSH_LINK *l, *next;
    UINT16 *folded;
    UINT32 i;

    if (Prefix->Length > AGENTSH_MAX_STRING_CHARS) {
        return;
    }
    folded = (UINT16 *)AgentshAlloc((SIZE_T)(Prefix->Length ? Prefix->Length : 1) * sizeof(UINT16),
                                    AGENTSH_TAG_KEY, AGENTSH_POOL_PAGED);
    if (folded == NULL) {
        /* Cannot compare: invalidate more, never less. */
        AgentshCacheInvalidateAll(Cache);
        return;
    }
    for (i = 0; i < Prefix->Length; i++) {
        folded[i] = AgentshUpcase(Prefix->Buffer[i]);
    }
    AgentshLockExclusive(&Cache->Lock);
    Cache->Generation++;
    for (l = Cache->Lru.Next; l != &Cache->Lru; l = next) {
        AGENTSH_CACHE_ENTRY *e = AGENTSH_CONTAINING(l, AGENTSH_CACHE_ENTRY, Lru);
        BOOLEAN match;
        next = l->Next;
        if ((Kind != AGENTSH_KIND_ANY && e->Kind != Kind) || (SessionToken != 0 && e->SessionToken != SessionToken)) {
            continue;
        }
        match = AgentshHasPrefix(e->Text, e->Length[0], folded, Prefix->Length);
        if (!match && e->Kind == AGENTSH_KIND_FILE) {
            /* a cached rename/link is stale when its destination's policy changes */
            match = e->Length[1] != 0 &&
                    AgentshHasPrefix(e->Text + e->Length[0], e->Length[1], folded, Prefix->Length);
        }
        if (match) {
            AgentshCacheRemoveLocked(Cache, e);
        }
    }
    AgentshUnlockExclusive(&Cache->Lock);
    AgentshFree(folded, AGENTSH_TAG_KEY);
}

UINT32 AgentshCacheReclaimExpired(_Inout_ AGENTSH_CACHE *Cache, _In_ UINT64 NowMs, _In_ UINT32 Max)
{
    AGENTSH_LINK *l, *prev;
    UINT32 n = 0;
    AgentshLockExclusive(&Cache->Lock);
    for (l = Cache->Lru.Prev; l != &Cache->Lru && n < Max; l = prev) {
        AGENTSH_CACHE_ENTRY *e = AGENTSH_CONTAINING(l, AGENTSH_CACHE_ENTRY, Lru);
        prev = l->Prev;
        if (NowMs >= e->ExpiresMs) {
            AgentshCacheRemoveLocked(Cache, e);
            AgentshAtomicInc64(&Cache->Expired);
            n++;
        }
    }
    AgentshUnlockExclusive(&Cache->Lock);
    return n;
}

UINT32 AgentshCacheCount(_Inout_ AGENTSH_CACHE *Cache)
{
    UINT32 n;
    AgentshLockShared(&Cache->Lock);
    n = Cache->Count;
    AgentshUnlockShared(&Cache->Lock);
    return n;
}

UINT32 AgentshCacheCapacity(_Inout_ AGENTSH_CACHE *Cache)
{
    UINT32 n;
    AgentshLockShared(&Cache->Lock);
    n = Cache->Capacity;
    AgentshUnlockShared(&Cache->Lock);
    return n;
}

BOOLEAN AgentshCacheDebugLruAt(_Inout_ AGENTSH_CACHE *Cache, _In_ UINT32 Index, _Out_writes_(Cap) UINT16 *Out,
    _In_ UINT32 Cap, _Out_ UINT32 *Length)
{
    AGENTSH_LINK *l;
    UINT32 i = 0;
    BOOLEAN found = FALSE;
    *Length = 0;
    AgentshLockShared(&Cache->Lock);
    for (l = Cache->Lru.Next; l != &Cache->Lru; l = l->Next, i++) {
        if (i == Index) {
            AGENTSH_CACHE_ENTRY *e = AGENTSH_CONTAINING(l, AGENTSH_CACHE_ENTRY, Lru);
            UINT32 n = e->Length[0] < Cap ? e->Length[0] : Cap;
            if (n != 0) {
                AgentshMemCopy(Out, e->Text, (SIZE_T)n * sizeof(UINT16));
            }
            *Length = n;
            found = TRUE;
            break;
        }
    }
    AgentshUnlockShared(&Cache->Lock);
    return found;
}
