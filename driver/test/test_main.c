/* test_main.c - runs every suite; prints one line per test and "driver-c: N passed, M failed". */
#include <stdlib.h>
#include <string.h>
#include "test.h"

extern const TEST_CASE gCacheTests[], gCoreTests[], gValidateTests[], gCollapseTests[];
#ifdef AGENTSH_TEST_PORT
extern const TEST_CASE gPortTests[];
#endif

int main(int argc, char **argv)
{
    const TEST_CASE *suites[] = { gCacheTests, gCoreTests, gValidateTests, gCollapseTests,
#ifdef AGENTSH_TEST_PORT
                                  gPortTests,
#endif
                                  NULL };
    const char *prefix = getenv("AGENTSH_TEST_SUMMARY");
    int passed = 0, failed = 0, s, i, a;
    setvbuf(stdout, NULL, _IONBF, 0);
    for (s = 0; suites[s] != NULL; s++) {
        for (i = 0; suites[s][i].Name != NULL; i++) {
            int match = argc <= 1;
            for (a = 1; a < argc; a++) match |= strstr(suites[s][i].Name, argv[a]) != NULL;
            if (!match) continue;
            gTestFailed = 0;
            suites[s][i].Fn();
            printf("%s %s\n", gTestFailed ? "FAIL" : "ok  ", suites[s][i].Name);
            if (gTestFailed) failed++; else passed++;
        }
    }
    printf("%s: %d passed, %d failed\n", prefix && *prefix ? prefix : "driver-c", passed, failed);
    return failed ? 1 : 0;
}
