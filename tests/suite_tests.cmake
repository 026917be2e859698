# Run after each link of the test program (tests/CMakeLists.txt): lists its GoogleTest suites and writes a CTest
# file with one test per suite, `PROGRAM --gtest_filter=Suite.*`. One process per suite rather than per test:
# each process loads LibTorch (about 1 s on 2 cores), which was half of the suite's time with ~470 processes.
# A crash still names its test: the suite's log ends at that test's "[ RUN ]" line.
# LONG_SUITES (comma-separated) start first: CTest schedules by COST, and one of them left for the end runs alone
# on a core the others no longer need (the data-parallel suite takes about 150 s).
#   cmake -DPROGRAM=path/to/fractrain_tests -DOUTPUT=suites.cmake -DTIMEOUT=900 -DLONG_SUITES=A,B -P suite_tests.cmake
cmake_minimum_required(VERSION 3.16)  # IN_LIST
execute_process(COMMAND "${PROGRAM}" --gtest_list_tests OUTPUT_VARIABLE listing ERROR_VARIABLE errors
                RESULT_VARIABLE status TIMEOUT 120)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} --gtest_list_tests failed (${status}): ${errors}")
endif()
string(REPLACE "\n" ";" lines "${listing}")
string(REPLACE "," ";" long_suites "${LONG_SUITES}")
set(content "# Written by tests/suite_tests.cmake from ${PROGRAM} --gtest_list_tests: one CTest test per suite.\n")
set(suites 0)
foreach(line IN LISTS lines)
  # A suite's line is its name and a dot, unindented (a typed suite's adds "  # TypeParam = ..."); its tests follow,
  # indented.
  if(line MATCHES "^([A-Za-z0-9_/]+)\\.")
    set(suite "${CMAKE_MATCH_1}")
    string(APPEND content "add_test([=[${suite}]=] [=[${PROGRAM}]=] [=[--gtest_filter=${suite}.*]=])\n"
                          "set_tests_properties([=[${suite}]=] PROPERTIES TIMEOUT ${TIMEOUT})\n")
    if(suite IN_LIST long_suites)
      string(APPEND content "set_tests_properties([=[${suite}]=] PROPERTIES COST 100)\n")
    endif()
    math(EXPR suites "${suites} + 1")
  endif()
endforeach()
if(suites EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} --gtest_list_tests listed no suite:\n${listing}")
endif()
file(WRITE "${OUTPUT}" "${content}")
