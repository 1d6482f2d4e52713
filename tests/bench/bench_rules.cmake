# SMP_POOL_SCOPE on real programs (tests/bench/bench_rules.sh); the ctest
# entry runs its short mode so that it keeps working.
find_program(SMP_SQLITE3_COMMAND sqlite3)
if(SMP_SQLITE3_COMMAND AND TARGET smp_preload)
    add_test(NAME bench_rules_quick
        COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/bench_rules.sh
                ${CMAKE_BINARY_DIR} --quick)
    set_tests_properties(bench_rules_quick PROPERTIES LABELS bench
        TIMEOUT 300)
endif()
