# `cmake --build build --target docs`: the API reference in build/docs/html (scripts/docs.sh, which
# fails on any Doxygen warning). Only defined when doxygen is installed.
find_program(VIGIL_DOXYGEN doxygen)
if(VIGIL_DOXYGEN)
  add_custom_target(docs
    COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/docs.sh ${PROJECT_BINARY_DIR}/docs
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    COMMENT "Doxygen: API reference in ${PROJECT_BINARY_DIR}/docs/html"
    VERBATIM)
endif()
