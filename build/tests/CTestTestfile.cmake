# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test([=[test_client]=] "/work/main/build/tests/test_client")
set_tests_properties([=[test_client]=] PROPERTIES  LABELS "unit" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;23;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[test_epoch]=] "/work/main/build/tests/test_epoch")
set_tests_properties([=[test_epoch]=] PROPERTIES  LABELS "unit" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;23;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[test_route]=] "/work/main/build/tests/test_route")
set_tests_properties([=[test_route]=] PROPERTIES  LABELS "unit" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;23;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[test_sched]=] "/work/main/build/tests/test_sched")
set_tests_properties([=[test_sched]=] PROPERTIES  LABELS "unit" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;23;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[test_timing]=] "/work/main/build/tests/test_timing")
set_tests_properties([=[test_timing]=] PROPERTIES  LABELS "unit" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;23;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[test_wire]=] "/work/main/build/tests/test_wire")
set_tests_properties([=[test_wire]=] PROPERTIES  LABELS "unit" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;23;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[fuzz_pcp_decode_corpus]=] "/work/main/build/tests/fuzz_pcp_decode_replay" "/work/main/tests/fuzz/corpus/fuzz_pcp_decode")
set_tests_properties([=[fuzz_pcp_decode_corpus]=] PROPERTIES  LABELS "unit;fuzz" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;34;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[fuzz_pcp_validate_corpus]=] "/work/main/build/tests/fuzz_pcp_validate_replay" "/work/main/tests/fuzz/corpus/fuzz_pcp_validate")
set_tests_properties([=[fuzz_pcp_validate_corpus]=] PROPERTIES  LABELS "unit;fuzz" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;34;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[fuzz_route_parse_corpus]=] "/work/main/build/tests/fuzz_route_parse_replay" "/work/main/tests/fuzz/corpus/fuzz_route_parse")
set_tests_properties([=[fuzz_route_parse_corpus]=] PROPERTIES  LABELS "unit;fuzz" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;34;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[format]=] "/work/main/tests/format-check.sh" "/usr/bin/clang-format")
set_tests_properties([=[format]=] PROPERTIES  LABELS "unit;style" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;55;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[install]=] "/work/main/tests/install/run.sh" "/work/main" "/work/main/build")
set_tests_properties([=[install]=] PROPERTIES  LABELS "install" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;59;add_test;/work/main/tests/CMakeLists.txt;0;")
subdirs("interop")
