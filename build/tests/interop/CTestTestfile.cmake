# CMake generated Testfile for 
# Source directory: /work/main/tests/interop
# Build directory: /work/main/build/tests/interop
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test([=[interop_map_tcp]=] "bash" "/work/main/tests/interop/cases.sh" "map_tcp")
set_tests_properties([=[interop_map_tcp]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_map_udp]=] "bash" "/work/main/tests/interop/cases.sh" "map_udp")
set_tests_properties([=[interop_map_udp]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_map_ipv6]=] "bash" "/work/main/tests/interop/cases.sh" "map_ipv6")
set_tests_properties([=[interop_map_ipv6]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_peer]=] "bash" "/work/main/tests/interop/cases.sh" "peer")
set_tests_properties([=[interop_peer]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_delete]=] "bash" "/work/main/tests/interop/cases.sh" "delete")
set_tests_properties([=[interop_delete]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_foreground_renew_and_sigterm]=] "bash" "/work/main/tests/interop/cases.sh" "foreground_renew_and_sigterm")
set_tests_properties([=[interop_foreground_renew_and_sigterm]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_prefer_failure]=] "bash" "/work/main/tests/interop/cases.sh" "prefer_failure")
set_tests_properties([=[interop_prefer_failure]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_third_party]=] "bash" "/work/main/tests/interop/cases.sh" "third_party")
set_tests_properties([=[interop_third_party]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_port_pair]=] "bash" "/work/main/tests/interop/cases.sh" "port_pair")
set_tests_properties([=[interop_port_pair]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_not_authorized]=] "bash" "/work/main/tests/interop/cases.sh" "not_authorized")
set_tests_properties([=[interop_not_authorized]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_unreachable]=] "bash" "/work/main/tests/interop/cases.sh" "unreachable")
set_tests_properties([=[interop_unreachable]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_announce]=] "bash" "/work/main/tests/interop/cases.sh" "announce")
set_tests_properties([=[interop_announce]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_capture_clean]=] "bash" "/work/main/tests/interop/cases.sh" "capture_clean")
set_tests_properties([=[interop_capture_clean]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;6;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
add_test([=[interop_lab_selftest]=] "bash" "/work/main/tests/interop/lab-selftest.sh")
set_tests_properties([=[interop_lab_selftest]=] PROPERTIES  ENVIRONMENT "PCPMAP_BUILD_DIR=/work/main/build;PCPMAP_LAB=pmt-selftest" LABELS "interop" RESOURCE_LOCK "netns-lab" SKIP_RETURN_CODE "77" TIMEOUT "90" _BACKTRACE_TRIPLES "/work/main/tests/interop/CMakeLists.txt;12;add_test;/work/main/tests/interop/CMakeLists.txt;0;")
