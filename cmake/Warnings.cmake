# The warning set of DESIGN.md; -Werror only under PCPMAP_WERROR (CI turns it on).
set(PCPMAP_WARNINGS
	-Wall -Wextra -Wshadow -Wpointer-arith -Wcast-qual -Wcast-align -Wstrict-prototypes
	-Wmissing-prototypes -Wformat=2 -Wundef -Wvla -Wsign-compare -Wimplicit-fallthrough
	-Wnull-dereference -Wmissing-declarations -Wwrite-strings)
if(PCPMAP_WERROR)
	list(APPEND PCPMAP_WARNINGS -Werror)
endif()
function(pcpmap_warnings target)
	target_compile_options(${target} PRIVATE ${PCPMAP_WARNINGS})
endfunction()
