# The stress workload lives in stress.c, shared with the plain program that
# the ThreadSanitizer build runs instead (see CMakeLists.txt).
target_sources(test_stress PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/stress.c)
