/* Headers of libsolv and libsolvext that the bindings cover. Order matters: the
 * repo_* headers of libsolvext do not include pool.h / repo.h themselves. */
#include <stdio.h>
#include <stdio_ext.h>
#include <solv/pool.h>
#include <solv/poolarch.h>
#include <solv/repo.h>
#include <solv/repodata.h>
#include <solv/dataiterator.h>
#include <solv/solver.h>
#include <solv/solverdebug.h>
#include <solv/selection.h>
#include <solv/transaction.h>
#include <solv/evr.h>
#include <solv/knownid.h>
#include <solv/chksum.h>
#include <solv/repo_rpmmd.h>
#include <solv/pool_parserpmrichdep.h>
#include <solv/repo_repomdxml.h>
#include <solv/repo_updateinfoxml.h>
#include <solv/repo_solv.h>
#include <solv/repo_write.h>
#include <solv/solv_xfopen.h>
#include <solv/testcase.h>
