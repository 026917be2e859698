# Runs a Python test script with the venv's Python, failing with the fix when the venv is missing (a test
# that cannot run must fail, not pass or skip: scripts/test.sh counts on it).
if(NOT EXISTS "${PYTHON}")
  message(FATAL_ERROR "${PYTHON} not found: run scripts/python_env.sh <build dir> to create the venv with "
                      "tensorboard (scripts/test.sh does)")
endif()
execute_process(COMMAND "${PYTHON}" "${SCRIPT}" "${CLI}" RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${SCRIPT} failed (${result})")
endif()
