//! What no output may touch. A stage's outputs are deleted and rewritten when it runs (and by
//! `clean`), so an output may not be, contain or lie inside: the project folder, a `.git`
//! folder, the cache in use (and the project's default `cache/`), the pipeline file, its lock
//! file, the other `*.yaml`/`*.yml`/`*.lock` files beside it or in `<project>/pipelines/`, or a
//! dependency of the same stage. Nor may it lead outside the project through a symlinked folder
//! (`models -> /elsewhere`).
//!
//! Paths are compared by their **real location**: every symlink on the way resolved, the part
//! that does not exist yet appended as written. So `./x`, `x/`, `a/../x` and `link-to-x` are
//! all `x`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::path;

/// How an output stands to a protected path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Is,
    Contains,
    LiesInside,
}

impl Relation {
    /// Both are real paths (absolute, no `.` or `..`), so comparing bytes at `/` boundaries
    /// says what `Path::starts_with` would, without splitting both into components: this runs
    /// for every output against every protected path.
    pub fn of(output: &Path, protected: &Path) -> Option<Relation> {
        let (output, protected) = (
            output.as_os_str().as_bytes(),
            protected.as_os_str().as_bytes(),
        );
        if output == protected {
            Some(Relation::Is)
        } else if lies_inside(protected, output) {
            Some(Relation::Contains)
        } else if lies_inside(output, protected) {
            Some(Relation::LiesInside)
        } else {
            None
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Relation::Is => "is",
            Relation::Contains => "contains",
            Relation::LiesInside => "lies inside",
        }
    }
}

/// Whether `path` lies strictly inside `folder` (both real paths, as bytes).
fn lies_inside(path: &[u8], folder: &[u8]) -> bool {
    path.len() > folder.len()
        && path.starts_with(folder)
        && (folder.ends_with(b"/") || path[folder.len()] == b'/')
}

/// A symlink on an output's path that leads outside the project.
#[derive(Debug)]
pub struct Escape {
    /// The link, relative to the project as spelled (`models`).
    pub link: String,
    /// What the link holds (`/elsewhere`).
    pub target: PathBuf,
    /// Where it resolves to.
    pub resolved: PathBuf,
}

/// Real locations of paths inside one project (see [`RealLocations::of`]), each path and
/// folder looked up once: thousands of outputs in one folder cost one `lstat` each, not one per
/// component, and a dependency many stages share costs one.
pub struct RealLocations<'p> {
    project: &'p Path,
    /// A path as spelled (its components joined by `/`) → its real location.
    known: HashMap<String, PathBuf, foldhash::fast::RandomState>,
}

impl<'p> RealLocations<'p> {
    pub fn new(project: &'p Path) -> Self {
        RealLocations {
            project,
            known: HashMap::default(),
        }
    }

    /// Where `relative` (a normalized path inside the project, a real path) really is: each
    /// existing component looked at in turn, symlinks resolved (a dangling one by its target's
    /// text), the rest appended. The first link that leads outside the project is an
    /// [`Escape`].
    ///
    /// By hand rather than `canonicalize`: that fails for paths that do not exist yet, and does
    /// not say which link took the path elsewhere.
    pub fn of(&mut self, relative: &str) -> Result<PathBuf, Escape> {
        // A pipeline's paths come normalized: spelled as they are, nothing to join.
        let spelled = match relative.split('/').any(str::is_empty) {
            false => Cow::Borrowed(relative),
            true => Cow::Owned(
                (relative.split('/'))
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join("/"),
            ),
        };
        if let Some(real) = self.known.get(spelled.as_ref()) {
            return Ok(real.clone());
        }
        if spelled.is_empty() {
            return Ok(self.project.to_path_buf());
        }
        let (folder, name) = spelled.rsplit_once('/').unwrap_or(("", &spelled));
        let real = self.look_up(folder, name, &spelled)?;
        self.known.insert(spelled.into_owned(), real.clone());
        Ok(real)
    }

    /// The real location of `name` in `folder` (`spelled` is both).
    fn look_up(&mut self, folder: &str, name: &str, spelled: &str) -> Result<PathBuf, Escape> {
        let mut real = self.of(folder)?;
        real.push(name);
        let is_link = fs::symlink_metadata(&real).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            return Ok(real);
        }
        let target = fs::read_link(&real).unwrap_or_default();
        let resolved = real.canonicalize().unwrap_or_else(|_| {
            let parent = real.parent().unwrap_or(self.project);
            lexical(&parent.join(&target))
        });
        if !resolved.starts_with(self.project) {
            return Err(Escape {
                link: spelled.to_string(),
                target,
                resolved,
            });
        }
        Ok(resolved)
    }
}

/// The real location of any path (relative ones from the current folder), which need not exist:
/// its deepest existing ancestor canonicalized, the rest appended.
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = lexical(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
    let mut missing = Vec::new();
    let mut existing = absolute.as_path();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return missing
                .iter()
                .rev()
                .fold(real, |real, part| real.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// `a/./b/../c` → `a/c` without touching the disk.
fn lexical(path: &Path) -> PathBuf {
    PathBuf::from(path::normalize(&path.to_string_lossy()))
}

/// `path` relative to `project` for messages; absolute when it lies elsewhere.
pub fn shown(project: &Path, path: &Path) -> String {
    match path.strip_prefix(project) {
        Ok(relative) if relative.as_os_str().is_empty() => ".".to_string(),
        Ok(relative) => relative.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// Whether a real path inside `project` goes through a folder named `.git`.
pub fn inside_git(project: &Path, real: &Path) -> bool {
    real.strip_prefix(project).is_ok_and(|relative| {
        relative
            .components()
            .any(|part| part == Component::Normal(".git".as_ref()))
    })
}

/// Whether a file name is a pipeline or lock file's (`.yaml`, `.yml`, `.lock`).
pub fn is_pipeline_like(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "lock")
}

/// The pipeline and lock files in `folder` (none when it does not exist).
pub fn pipeline_files_in(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| is_pipeline_like(path))
        .map(|path| resolve(&path))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_locations_follow_links_and_name_the_one_that_leaves() {
        let project = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let project = project.path().canonicalize().unwrap();
        fs::create_dir_all(project.join("data")).unwrap();
        std::os::unix::fs::symlink(project.join("data"), project.join("inner")).unwrap();
        std::os::unix::fs::symlink(outside.path(), project.join("models")).unwrap();
        std::os::unix::fs::symlink("/nowhere/at/all", project.join("dangling")).unwrap();
        let mut locations = RealLocations::new(&project);
        assert_eq!(
            locations.of("inner/new/x").unwrap(),
            project.join("data/new/x")
        );
        assert_eq!(
            locations.of("inner/new/y").unwrap(),
            project.join("data/new/y"),
            "the folder's remembered location"
        );
        let escape = locations.of("models/m/x").unwrap_err();
        assert_eq!(escape.link, "models");
        assert_eq!(escape.target, outside.path());
        let escape = locations.of("dangling/x").unwrap_err();
        assert_eq!(escape.resolved, PathBuf::from("/nowhere/at/all"));
    }

    #[test]
    fn relations_and_resolution_of_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(
            resolve(&dir.path().join("a/./b/../c")),
            real.join("a/c"),
            "a path that does not exist yet"
        );
        let (a, ab) = (Path::new("/p/a"), Path::new("/p/a/b"));
        assert_eq!(Relation::of(a, a), Some(Relation::Is));
        assert_eq!(Relation::of(a, ab), Some(Relation::Contains));
        assert_eq!(Relation::of(ab, a), Some(Relation::LiesInside));
        assert_eq!(Relation::of(Path::new("/p/ab"), a), None);
        assert_eq!(Relation::of(a, Path::new("/")), Some(Relation::LiesInside));
        assert!(inside_git(Path::new("/p"), Path::new("/p/sub/.git/x")));
        assert!(!inside_git(Path::new("/p"), Path::new("/p/sub/.github")));
    }
}
