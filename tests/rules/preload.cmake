# Programs run under libsmp_preload.so with SMP_POOL_SCOPE set; included
# by CMakeLists.txt once the preload target exists.

add_executable(rules_prog prog.c)
target_include_directories(rules_prog PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(rules_prog PRIVATE _GNU_SOURCE
    RULES_PLUGIN="$<TARGET_FILE:rules_plugin>")
target_compile_options(rules_prog PRIVATE -g
    $<$<C_COMPILER_ID:GNU>:-fno-ipa-icf>)
target_link_libraries(rules_prog PRIVATE rules_helper smp_warnings
    Threads::Threads ${CMAKE_DL_LIBS})
set_target_properties(rules_prog PROPERTIES ENABLE_EXPORTS ON)
add_dependencies(rules_prog rules_plugin)
add_custom_command(TARGET rules_prog POST_BUILD
    COMMAND ${CMAKE_OBJCOPY} --strip-all $<TARGET_FILE:rules_prog>
            $<TARGET_FILE:rules_prog>.stripped
    COMMENT "Stripping a copy of rules_prog")

set(all_heap secret=heap copy=heap thread=heap lib=heap size=heap
    other=heap plugin=heap)

# rules_preload(NAME RULES [SITE=WHERE...] [STRIPPED] [REGEX re]
#               [OPTIONS smp_options]): runs rules_prog under the preload
# with SMP_POOL_SCOPE=RULES (';' written as '|' here, since CMake splits
# lists at ';').
function(rules_preload name rules)
    cmake_parse_arguments(arg "STRIPPED" "REGEX;OPTIONS" "" ${ARGN})
    set(program $<TARGET_FILE:rules_prog>)
    if(arg_STRIPPED)
        set(program $<TARGET_FILE:rules_prog>.stripped)
    endif()
    string(REPLACE "|" "\\;" rules "${rules}")
    add_test(NAME rules_preload_${name}
        COMMAND ${program} ${arg_UNPARSED_ARGUMENTS})
    set_tests_properties(rules_preload_${name} PROPERTIES LABELS rules
        TIMEOUT 60
        ENVIRONMENT "LD_PRELOAD=$<TARGET_FILE:smp_preload>;SMP_POOL_SCOPE=${rules};SMP_OPTIONS=${arg_OPTIONS}"
        FAIL_REGULAR_EXPRESSION "FAILED|not running under")
    if(arg_REGEX)
        set_tests_properties(rules_preload_${name} PROPERTIES
            PASS_REGULAR_EXPRESSION "${arg_REGEX}")
    endif()
endfunction()

rules_preload(fn keys=fn:load_secret
    secret=pool copy=pool thread=pool lib=heap size=heap other=heap
    plugin=heap)
rules_preload(caller keys=caller:load_secret
    secret=pool copy=heap thread=pool lib=heap size=heap other=heap)
rules_preload(lib keys=lib:librulestest.so
    secret=heap copy=heap lib=pool size=heap other=heap)
rules_preload(size keys=size:5000
    secret=heap copy=heap lib=heap size=pool other=heap)
rules_preload(fn_and_size keys=fn:load_secret,size:48
    secret=pool copy=heap thread=heap size=heap other=heap)
rules_preload(two_rules "keys=caller:load_secret|tls=lib:librulestest*"
    secret=pool copy=heap lib=pool size=heap other=heap)
rules_preload(dlopen keys=fn:plugin_alloc
    plugin=pool secret=heap other=heap
    REGEX "fn:plugin_alloc matches no function.*rules_prog: ok")
rules_preload(dlopen_lib keys=lib:librulesplugin.so
    plugin=pool lib=heap other=heap)
rules_preload(no_match keys=fn:no_such_function_anywhere ${all_heap}
    REGEX "fn:no_such_function_anywhere matches no function.*rules_prog: ok")
rules_preload(stripped_exported keys=fn:load_secret STRIPPED
    secret=pool copy=pool other=heap)
rules_preload(stripped_static keys=fn:copy_bytes STRIPPED
    secret=heap copy=heap other=heap
    REGEX "fn:copy_bytes matches no function.*rules_prog: ok")
rules_preload(unstripped_static keys=fn:copy_bytes
    secret=heap copy=pool other=heap)

# fn_depth counts the allocator's caller as the first frame: load_secret
# calls malloc itself (one frame) or through copy_bytes (two frames).
rules_preload(fn_depth_one keys=fn:load_secret OPTIONS fn_depth=1
    secret=pool copy=heap other=heap)
rules_preload(fn_depth_two keys=fn:load_secret OPTIONS fn_depth=2
    secret=pool copy=pool other=heap)
rules_preload(fn_depth_bad keys=fn:load_secret OPTIONS fn_depth=0
    secret=pool
    REGEX "^smp: SMP_OPTIONS: bad value '0' for option 'fn_depth'")
set_tests_properties(rules_preload_fn_depth_bad PROPERTIES
    FAIL_REGULAR_EXPRESSION "rules_prog")

# A bad rule: by default the program does not start at all; with
# config_errors=warn it runs with the good rules.
rules_preload(bad_rule_refuses "keys=fn:load_secret|tls=lib:" secret=pool
    REGEX "^smp: SMP_POOL_SCOPE: at column 29: expected a file name")
set_tests_properties(rules_preload_bad_rule_refuses PROPERTIES
    FAIL_REGULAR_EXPRESSION "rules_prog")
rules_preload(bad_rule_warn "tls=lib:|keys=fn:load_secret"
    OPTIONS config_errors=warn
    secret=pool copy=pool lib=heap other=heap
    REGEX "at column 9: expected a file name.*rules_prog: ok")

# An existing program: the openssl command with a real pattern.
find_program(SMP_OPENSSL_COMMAND openssl)
if(SMP_OPENSSL_COMMAND)
    add_test(NAME rules_preload_openssl
        COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/openssl.sh
                $<TARGET_FILE:smp_preload>
                ${CMAKE_CURRENT_BINARY_DIR}/openssl-work)
    set_tests_properties(rules_preload_openssl PROPERTIES LABELS rules
        TIMEOUT 120)
endif()

# The numbers of an RSA key, generated and read back, lie in the pool.
find_package(OpenSSL COMPONENTS Crypto)
if(OPENSSL_FOUND)
    add_executable(rules_rsa_key rsa_key.c)
    target_link_libraries(rules_rsa_key PRIVATE OpenSSL::Crypto smp_warnings)
    add_test(NAME rules_preload_rsa_key COMMAND rules_rsa_key)
    set_tests_properties(rules_preload_rsa_key PROPERTIES LABELS rules
        TIMEOUT 60
        ENVIRONMENT "LD_PRELOAD=$<TARGET_FILE:smp_preload>;SMP_POOL_SCOPE=keys=fn:RSA_*,fn:BN_*"
        FAIL_REGULAR_EXPRESSION "FAILED|not running under")
endif()
