# Install rules, the CMake package (find_package(vigil)), vigil-core.pc, and the Debian packages
# (cpack). Included at the end of the top-level CMakeLists.txt.
#
# The libraries stay static (position-independent): vigil is a 0.x C++20 library with no stable
# ABI to promise behind a soname, the `vigil` tool ships without a private shared library, and a
# consumer of vigil::torch links libtorch anyway. The price of static libraries is that their
# private dependencies (xxhash, zlib) become link dependencies of every consumer: the exported
# targets carry them as $<LINK_ONLY:...>, and vigilConfig.cmake finds them again.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(VIGIL_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/vigil
    CACHE STRING "Where vigilConfig.cmake goes, relative to the prefix")

set(VIGIL_INSTALL_TARGETS vigil_core)
if(VIGIL_WITH_TORCH)
  list(APPEND VIGIL_INSTALL_TARGETS vigil_torch)
endif()

install(TARGETS ${VIGIL_INSTALL_TARGETS} EXPORT vigilTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
# Without the adapter, its headers would only promise a library that is not there.
set(VIGIL_HEADER_EXCLUDES)
if(NOT VIGIL_WITH_TORCH)
  set(VIGIL_HEADER_EXCLUDES PATTERN "torch" EXCLUDE)
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/vigil DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT dev FILES_MATCHING PATTERN "*.hpp" ${VIGIL_HEADER_EXCLUDES})
if(VIGIL_BUILD_TOOL)
  install(TARGETS vigil RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tool)
  if(VIGIL_WITH_TORCH)
    # `vigil train` / `vigil eval` exec it from vigil's own folder.
    install(TARGETS vigil_torch_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tool)
  endif()
endif()

install(EXPORT vigilTargets NAMESPACE vigil:: DESTINATION ${VIGIL_INSTALL_CMAKEDIR}
  COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/vigilConfig.cmake.in
  ${PROJECT_BINARY_DIR}/vigilConfig.cmake INSTALL_DESTINATION ${VIGIL_INSTALL_CMAKEDIR})
# 0.x: a consumer asking for 0.1 must not get 0.2 (SameMinorVersion); from 1.0 on, SameMajor.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/vigilConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/vigilConfig.cmake ${PROJECT_BINARY_DIR}/vigilConfigVersion.cmake
  DESTINATION ${VIGIL_INSTALL_CMAKEDIR} COMPONENT dev)

# vigil-core.pc, relocatable: the prefix is found from the .pc file's own place.
file(RELATIVE_PATH VIGIL_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" VIGIL_PC_TO_PREFIX "${VIGIL_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/vigil-core.pc.in ${PROJECT_BINARY_DIR}/vigil-core.pc
  @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/vigil-core.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
  COMPONENT dev)

# ---- Debian packages: `cpack` in the build folder writes vigil_*.deb and libvigil-dev_*.deb ----
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME vigil)
set(CPACK_PACKAGE_VENDOR "vigil")
set(CPACK_PACKAGE_CONTACT "vigil maintainers <vigil@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "early stopping and crash-safe checkpointing for libtorch training")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL tool dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
# The tool: its Depends are computed by dpkg-shlibdeps from the shared libraries it really
# loads (libtorch, fmt, openblas, ... each mapped to the Debian package that ships it).
set(CPACK_DEBIAN_TOOL_PACKAGE_NAME vigil)
set(CPACK_DEBIAN_TOOL_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_TOOL_DESCRIPTION
  "The vigil command-line tool: train, replay, eval, inspect, verify, plot.")
# Headers, static libraries, the CMake package and vigil-core.pc: what building against vigil
# needs, i.e. the -dev packages of everything the static libraries and the headers use.
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libvigil-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(VIGIL_DEV_DEPENDS "nlohmann-json3-dev, libfmt-dev, libxxhash-dev, pkg-config | pkgconf")
if(VIGIL_WITH_TORCH)
  string(APPEND VIGIL_DEV_DEPENDS ", libtorch-dev, zlib1g-dev")
endif()
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "${VIGIL_DEV_DEPENDS}")
set(CPACK_DEBIAN_DEV_DESCRIPTION
  "Development files: headers, the static libraries vigil::core and vigil::torch, the CMake\n package (find_package(vigil)) and vigil-core.pc.")
include(CPack)
